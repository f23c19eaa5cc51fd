// Package bridge attaches network namespaces to a Linux bridge with veth
// pairs, as CNI's bridge plugin does, over netlink and in process.
package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ContainerIfName is the container's end of the veth pair.
const ContainerIfName = "eth0"

// Bridge is the host side of the network.
type Bridge struct {
	Name string
	// Gateway is the bridge's own address, with the subnet's length.
	Gateway netip.Prefix
	MTU     int
}

// Ensure creates the bridge with its address unless it exists, brings it
// up and enables what containers behind it need. It is cheap when all of
// that is already in place, and safe to run from several shims at once.
//
// It enables net.ipv4.ip_forward, host-wide, as CNI's bridge plugin and
// Docker do: without it containers cannot reach beyond the host. It is
// never turned off again; other networks on the host may rely on it.
// route_localnet on the bridge lets connections to 127.0.0.1 be DNATed to a
// container: the kernel otherwise drops packets with a loopback source
// routed out of a non-loopback device, and their replies. It also lets
// containers send to the host's loopback addresses and from them
// (CVE-2020-8558): the nat package's guard rules, installed with the
// first container's rules, drop that traffic again.
func (b Bridge) Ensure() (netlink.Link, error) {
	link, err := netlink.LinkByName(b.Name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		err = netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.Name, MTU: b.MTU}})
		if err != nil && !errors.Is(err, unix.EEXIST) { // EEXIST: another shim won
			return nil, fmt.Errorf("failed to create bridge %s: %w", b.Name, err)
		}
		link, err = netlink.LinkByName(b.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to find bridge %s: %w", b.Name, err)
	}
	if link.Type() != "bridge" {
		return nil, fmt.Errorf("link %s is a %s, not a bridge: %w", b.Name, link.Type(), errdefs.ErrFailedPrecondition)
	}
	if err := b.ensureAddress(link); err != nil {
		return nil, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("failed to bring up bridge %s: %w", b.Name, err)
		}
	}
	if err := enableSysctl(filepath.Join("net/ipv4/conf", b.Name, "route_localnet")); err != nil {
		return nil, err
	}
	if err := enableSysctl("net/ipv4/ip_forward"); err != nil {
		return nil, err
	}
	return link, nil
}

func (b Bridge) ensureAddress(link netlink.Link) error {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("failed to list addresses of bridge %s: %w", b.Name, err)
	}
	want := ipNet(b.Gateway)
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			return nil
		}
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: want}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("failed to add address %s to bridge %s: %w", b.Gateway, b.Name, err)
	}
	return nil
}

// Delete removes the bridge. Shims never do; tests and operators may. A
// missing bridge is not an error.
func (b Bridge) Delete() error {
	return deleteLink(b.Name)
}

// Endpoint is one container's attachment.
type Endpoint struct {
	// HostIfName is the host's end of the veth pair; the container's is
	// ContainerIfName.
	HostIfName string
	// NetNS is the path of the container's network namespace.
	NetNS string
	// Address is the container's, with the subnet's length.
	Address netip.Prefix
}

// Attach connects the namespace to the bridge: a veth pair whose container
// end is created directly inside the namespace as eth0, with the address, a
// default route via the gateway and lo up. On failure nothing is left.
func (b Bridge) Attach(br netlink.Link, ep Endpoint) (retErr error) {
	ns, err := netns.GetFromPath(ep.NetNS)
	if err != nil {
		return fmt.Errorf("failed to open network namespace %s: %w", ep.NetNS, err)
	}
	defer ns.Close()

	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        ep.HostIfName,
			MTU:         b.MTU,
			MasterIndex: br.Attrs().Index,
			Flags:       net.FlagUp,
		},
		PeerName:      ContainerIfName,
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Names derive from the container, so this is the same
			// container attached twice, or a leftover.
			return fmt.Errorf("failed to create veth %s: %v: %w", ep.HostIfName, err, errdefs.ErrAlreadyExists) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
		}
		return fmt.Errorf("failed to create veth %s: %w", ep.HostIfName, err)
	}
	defer func() {
		if retErr != nil {
			deleteLink(ep.HostIfName) // takes the container's end with it
		}
	}()
	// Hairpin lets a container reach its own published port through the
	// host: the DNATed packet goes back out of the port it came in on.
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return fmt.Errorf("failed to enable hairpin on %s: %w", ep.HostIfName, err)
	}
	return configureContainer(ns, ep.Address, b.Gateway.Addr())
}

// configureContainer sets up eth0 and lo through a netlink socket opened
// inside the namespace, so no thread of ours ever switches namespaces.
func configureContainer(ns netns.NsHandle, addr netip.Prefix, gw netip.Addr) error {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("failed to open netlink in container network namespace: %w", err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(ContainerIfName)
	if err != nil {
		return fmt.Errorf("failed to find %s in container: %w", ContainerIfName, err)
	}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("failed to add address %s to %s: %w", addr, ContainerIfName, err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("failed to bring up %s: %w", ContainerIfName, err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("failed to find lo in container: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("failed to bring up lo: %w", err)
	}
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("failed to add default route via %s: %w", gw, err)
	}
	return nil
}

// Detach removes the host end of a container's veth pair, which takes the
// container end with it. A missing link is not an error.
func Detach(hostIfName string) error {
	return deleteLink(hostIfName)
}

func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err == nil {
		err = netlink.LinkDel(link)
	}
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("failed to delete link %s: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// enableSysctl sets a boolean under /proc/sys to 1, writing only when it
// is not already.
func enableSysctl(name string) error {
	path := filepath.Join("/proc/sys", name)
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("failed to enable %s: %w", strings.ReplaceAll(name, "/", "."), err)
	}
	return nil
}
