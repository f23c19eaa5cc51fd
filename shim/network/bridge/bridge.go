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
	// Gateway and Gateway6 are the bridge's own IPv4 and IPv6 addresses,
	// with their subnets' lengths; either may be the zero prefix, not both.
	Gateway  netip.Prefix
	Gateway6 netip.Prefix
	MTU      int
}

// Ensure creates the bridge with its addresses unless it exists, brings it
// up and enables what containers behind it need. It is cheap when all of
// that is already in place, and safe to run from several shims at once.
//
// With an IPv4 gateway, it enables net.ipv4.ip_forward, host-wide, as
// CNI's bridge plugin and Docker do: without it containers cannot reach
// beyond the host. It is never turned off again; other networks on the
// host may rely on it. route_localnet on the bridge lets connections to
// 127.0.0.1 be DNATed to a container: the kernel otherwise drops packets
// with a loopback source routed out of a non-loopback device, and their
// replies. It also lets containers send to the host's loopback addresses
// and from them (CVE-2020-8558): the nat package's guard rules, installed
// with the first container's rules, drop that traffic again.
//
// With an IPv6 gateway, only the bridge's own settings change: IPv6 is
// enabled on it and, where the kernel has it (6.17 and later),
// force_forwarding, which forwards what containers send although the
// host's net.ipv6.conf.all.forwarding is off. That one is left alone:
// turning it on makes every interface of the host stop accepting router
// advertisements (accept_ra 1), which may take the host's own IPv6 routes
// away. IPv6 has no route_localnet: the kernel drops packets to or from ::1
// arriving on any other device than lo (RFC 4291 2.5.3) before netfilter
// sees them, so a container cannot reach the host's ::1 services, and a
// port cannot be published on ::1 (the nat package refuses it).
// Forwarding6 says whether the host forwards IPv6 beyond the bridge.
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
	if b.Gateway6.IsValid() {
		// Before the address: a disabled link refuses it. Interfaces
		// inherit net.ipv6.conf.default.disable_ipv6 when they are made.
		if err := setSysctl(filepath.Join("net/ipv6/conf", b.Name, "disable_ipv6"), "0"); err != nil {
			return nil, err
		}
	}
	for _, gw := range []netip.Prefix{b.Gateway, b.Gateway6} {
		if gw.IsValid() {
			if err := b.ensureAddress(link, gw); err != nil {
				return nil, err
			}
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("failed to bring up bridge %s: %w", b.Name, err)
		}
	}
	if b.Gateway.IsValid() {
		if err := setSysctl(filepath.Join("net/ipv4/conf", b.Name, "route_localnet"), "1"); err != nil {
			return nil, err
		}
		if err := setSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return nil, err
		}
	}
	if b.Gateway6.IsValid() {
		err := setSysctl(filepath.Join("net/ipv6/conf", b.Name, "force_forwarding"), "1")
		if err != nil && !errors.Is(err, os.ErrNotExist) { // before Linux 6.17
			return nil, err
		}
	}
	return link, nil
}

// Forwarding6 reports whether the host forwards IPv6 between all its
// interfaces (net.ipv6.conf.all.forwarding): without it containers reach
// the host and each other over IPv6, nothing beyond.
func Forwarding6() bool {
	cur, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
	return err == nil && strings.TrimSpace(string(cur)) == "1"
}

func (b Bridge) ensureAddress(link netlink.Link, gw netip.Prefix) error {
	family := netlink.FAMILY_V4
	if gw.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, family)
	if err != nil {
		return fmt.Errorf("failed to list addresses of bridge %s: %w", b.Name, err)
	}
	want := ipNet(gw)
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			return nil
		}
	}
	if err := netlink.AddrAdd(link, newAddr(gw)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("failed to add address %s to bridge %s: %w", gw, b.Name, err)
	}
	return nil
}

// newAddr is addr for an interface. An IPv6 one skips duplicate address
// detection, which would keep it unusable ("tentative") for a second or
// more: the IPAM leases each address once.
func newAddr(addr netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipNet(addr)}
	if addr.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
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
	// Address and Address6 are the container's IPv4 and IPv6 addresses,
	// with their subnets' lengths; either may be the zero prefix.
	Address  netip.Prefix
	Address6 netip.Prefix
}

// Attach connects the namespace to the bridge: a veth pair whose container
// end is created directly inside the namespace as eth0, with the addresses,
// a default route via the gateway of each family and lo up. On failure
// nothing is left.
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
	return configureContainer(ns, []netip.Prefix{ep.Address, ep.Address6}, []netip.Prefix{b.Gateway, b.Gateway6})
}

// LoopbackUp brings up lo in the namespace at path, through a netlink
// socket opened inside it: for bridge mode through CNI, whose plugins
// configure only their own interface.
func LoopbackUp(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("failed to open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("failed to open netlink in container network namespace: %w", err)
	}
	defer h.Close()
	return loopbackUp(h)
}

// loopbackUp brings up lo through h, a netlink handle in the container's
// namespace. The runtime's init does the same with an ioctl in its own
// namespace (runtime/initproc), which keeps netlink out of the runtime; the
// shim, which never switches a thread's namespace, cannot use that.
func loopbackUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("failed to bring up lo in container network namespace: %w", err)
	}
	return nil
}

// configureContainer sets up eth0 and lo through a netlink socket opened
// inside the namespace, so no thread of ours ever switches namespaces.
// addrs[i] is routed by default via gws[i]; zero prefixes are skipped.
func configureContainer(ns netns.NsHandle, addrs, gws []netip.Prefix) error {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("failed to open netlink in container network namespace: %w", err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(ContainerIfName)
	if err != nil {
		return fmt.Errorf("failed to find %s in container: %w", ContainerIfName, err)
	}
	for _, addr := range addrs {
		if !addr.IsValid() {
			continue
		}
		if err := h.AddrAdd(eth0, newAddr(addr)); err != nil {
			return fmt.Errorf("failed to add address %s to %s: %w", addr, ContainerIfName, err)
		}
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("failed to bring up %s: %w", ContainerIfName, err)
	}
	if err := loopbackUp(h); err != nil {
		return err
	}
	for i, addr := range addrs {
		if !addr.IsValid() {
			continue
		}
		gw := gws[i].Addr()
		route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}
		if gw.Is6() {
			route.Family = netlink.FAMILY_V6
		}
		if err := h.RouteAdd(route); err != nil {
			return fmt.Errorf("failed to add default route via %s: %w", gw, err)
		}
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

// setSysctl sets a value under /proc/sys, writing only when it differs.
func setSysctl(name, value string) error {
	path := filepath.Join("/proc/sys", name)
	cur, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", strings.ReplaceAll(name, "/", "."), err) // a knob this kernel lacks
	}
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("failed to set %s to %s: %w", strings.ReplaceAll(name, "/", "."), value, err)
	}
	return nil
}
