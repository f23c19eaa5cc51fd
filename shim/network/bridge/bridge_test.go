package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
	hnetns "github.com/hostnet-dev/hostnet/shim/network/netns"
)

// testBridge is unique to this test process and removed with it.
func testBridge(t *testing.T) (Bridge, netlink.Link) {
	t.Helper()
	pid := os.Getpid()
	b := Bridge{
		Name:    fmt.Sprintf("hnt%d", pid),
		Gateway: netip.MustParsePrefix(fmt.Sprintf("10.234.%d.1/24", pid%100)),
		MTU:     1400,
	}
	t.Cleanup(func() {
		if err := b.Delete(); err != nil {
			t.Error(err)
		}
	})
	link, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	return b, link
}

func testNetNS(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netns")
	if err := hnetns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hnetns.Remove(path) })
	return path
}

func TestEnsure(t *testing.T) {
	nstest.NeedRoot(t)
	b, link := testBridge(t)
	if link.Attrs().MTU != 1400 {
		t.Errorf("bridge MTU = %d, want 1400", link.Attrs().MTU)
	}
	again, err := b.Ensure()
	if err != nil || again.Attrs().Index != link.Attrs().Index {
		t.Fatalf("second Ensure = %v, %v", again, err)
	}
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != b.Gateway.String() {
		t.Errorf("bridge addresses = %v, want only %s", addrs, b.Gateway)
	}
	for _, p := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/" + b.Name + "/route_localnet"} {
		if v, _ := os.ReadFile("/proc/sys/" + p); string(v) != "1\n" {
			t.Errorf("%s = %q, want 1", p, v)
		}
	}
}

func TestEnsureNotABridge(t *testing.T) {
	nstest.NeedRoot(t)
	name := fmt.Sprintf("hnd%d", os.Getpid())
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteLink(name) })
	_, err := Bridge{Name: name, Gateway: netip.MustParsePrefix("10.234.250.1/24"), MTU: 1500}.Ensure()
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Ensure over a veth: %v, want failed precondition", err)
	}
}

func TestAttachDetach(t *testing.T) {
	nstest.NeedRoot(t)
	b, br := testBridge(t)
	nsPath := testNetNS(t)
	ep := Endpoint{
		HostIfName: fmt.Sprintf("hnv%da", os.Getpid()),
		NetNS:      nsPath,
		Address:    netip.PrefixFrom(b.Gateway.Addr().Next(), b.Gateway.Bits()),
	}
	t.Cleanup(func() { Detach(ep.HostIfName) })
	if err := b.Attach(br, ep); err != nil {
		t.Fatal(err)
	}

	host, err := netlink.LinkByName(ep.HostIfName)
	if err != nil {
		t.Fatal(err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("%s is not a port of %s", ep.HostIfName, b.Name)
	}
	if pi, err := netlink.LinkGetProtinfo(host); err != nil || !pi.Hairpin {
		t.Errorf("hairpin on %s = %v, %v; want on", ep.HostIfName, pi.Hairpin, err)
	}

	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(ContainerIfName)
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().MTU != 1400 || eth0.Attrs().OperState != netlink.OperUp {
		t.Errorf("eth0 mtu %d state %s", eth0.Attrs().MTU, eth0.Attrs().OperState)
	}
	addrs, _ := h.AddrList(eth0, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != ep.Address.String() {
		t.Errorf("eth0 addresses = %v, want %s", addrs, ep.Address)
	}
	checkGateway(t, h, eth0, nsPath, netlink.FAMILY_V4, b.Gateway.Addr())

	// The same names again: a clear AlreadyExists, and the first
	// attachment is left alone.
	if err := b.Attach(br, ep); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Attach: %v, want already exists", err)
	}
	if _, err := netlink.LinkByName(ep.HostIfName); err != nil {
		t.Errorf("failed Attach removed the first attachment's veth: %v", err)
	}

	if err := Detach(ep.HostIfName); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(ep.HostIfName); err == nil {
		t.Error("host veth left after Detach")
	}
	if _, err := h.LinkByName(ContainerIfName); err == nil {
		t.Error("eth0 left in the namespace after Detach")
	}
	if err := Detach(ep.HostIfName); err != nil {
		t.Errorf("second Detach: %v", err)
	}
}

func TestAttachFailureUndoes(t *testing.T) {
	nstest.NeedRoot(t)
	b, br := testBridge(t)
	nsPath := testNetNS(t)
	// A gateway outside the container's subnet makes the last step, the
	// default route, fail after the veth exists.
	bad := b
	bad.Gateway = netip.MustParsePrefix("10.234.251.1/24")
	ep := Endpoint{
		HostIfName: fmt.Sprintf("hnv%db", os.Getpid()),
		NetNS:      nsPath,
		Address:    netip.PrefixFrom(b.Gateway.Addr().Next(), b.Gateway.Bits()),
	}
	t.Cleanup(func() { Detach(ep.HostIfName) })
	err := bad.Attach(br, ep)
	if err == nil || !errors.Is(err, unix.ENETUNREACH) {
		t.Fatalf("Attach with an unreachable gateway: %v, want network unreachable", err)
	}
	if _, err := netlink.LinkByName(ep.HostIfName); err == nil {
		t.Error("veth left after a failed Attach")
	}
}

// Issue 15: a dual-stack bridge has a gateway of each family, its
// container an address of each and a default route via each gateway;
// IPv6 forwarding is enabled on the bridge only, never host-wide.
func TestAttachDualStack(t *testing.T) {
	nstest.NeedRoot(t)
	pid := os.Getpid()
	b := Bridge{
		Name:     fmt.Sprintf("hnt%d6", pid),
		Gateway:  netip.MustParsePrefix(fmt.Sprintf("10.234.%d.1/24", 100+pid%100)),
		Gateway6: netip.MustParsePrefix(fmt.Sprintf("fd00:234:%x::1/64", pid&0xffff)),
		MTU:      1500,
	}
	t.Cleanup(func() { b.Delete() })
	allForwarding, _ := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
	br, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	addrs6, _ := netlink.AddrList(br, netlink.FAMILY_V6)
	found := false
	for _, a := range addrs6 {
		found = found || a.IPNet.String() == b.Gateway6.String()
	}
	if !found {
		t.Errorf("bridge IPv6 addresses = %v, want %s among them", addrs6, b.Gateway6)
	}
	if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + b.Name + "/force_forwarding"); err == nil && string(v) != "1\n" {
		t.Errorf("force_forwarding on %s = %q, want 1", b.Name, v)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); string(v) != string(allForwarding) {
		t.Errorf("net.ipv6.conf.all.forwarding changed from %q to %q", allForwarding, v)
	}

	nsPath := testNetNS(t)
	ep := Endpoint{
		HostIfName: fmt.Sprintf("hnv%dd", pid),
		NetNS:      nsPath,
		Address:    netip.PrefixFrom(b.Gateway.Addr().Next(), b.Gateway.Bits()),
		Address6:   netip.PrefixFrom(b.Gateway6.Addr().Next(), b.Gateway6.Bits()),
	}
	t.Cleanup(func() { Detach(ep.HostIfName) })
	if err := b.Attach(br, ep); err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(ContainerIfName)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		family   int
		addr, gw netip.Prefix
	}{{netlink.FAMILY_V4, ep.Address, b.Gateway}, {netlink.FAMILY_V6, ep.Address6, b.Gateway6}} {
		addrs, _ := h.AddrList(eth0, tc.family)
		ok := false
		for _, a := range addrs {
			if a.IPNet.String() == tc.addr.String() {
				ok = true
				if a.Flags&unix.IFA_F_TENTATIVE != 0 {
					t.Errorf("%s is tentative (duplicate address detection runs)", tc.addr)
				}
			}
		}
		if !ok {
			t.Errorf("eth0 addresses = %v, want %s", addrs, tc.addr)
		}
		checkGateway(t, h, eth0, nsPath, tc.family, tc.gw.Addr())
	}
}

// An IPv6-only bridge has no IPv4 address, and neither has its container.
func TestAttachIPv6Only(t *testing.T) {
	nstest.NeedRoot(t)
	pid := os.Getpid()
	b := Bridge{Name: fmt.Sprintf("hnt%do", pid), Gateway6: netip.MustParsePrefix(fmt.Sprintf("fd00:235:%x::1/120", pid&0xffff)), MTU: 1500}
	t.Cleanup(func() { b.Delete() })
	br, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	if addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Errorf("IPv6-only bridge has IPv4 addresses %v", addrs)
	}
	nsPath := testNetNS(t)
	ep := Endpoint{HostIfName: fmt.Sprintf("hnv%do", pid), NetNS: nsPath, Address6: netip.PrefixFrom(b.Gateway6.Addr().Next(), b.Gateway6.Bits())}
	t.Cleanup(func() { Detach(ep.HostIfName) })
	if err := b.Attach(br, ep); err != nil {
		t.Fatal(err)
	}
	if err := nstest.Ping(nsPath, b.Gateway6.Addr()); err != nil {
		t.Errorf("ping gateway %s from the container: %v", b.Gateway6.Addr(), err)
	}
	err = hnetns.Do(nsPath, func() error {
		eth0, err := netlink.LinkByName(ContainerIfName)
		if err != nil {
			return err
		}
		if addrs, _ := netlink.AddrList(eth0, netlink.FAMILY_V4); len(addrs) != 0 {
			t.Errorf("container of an IPv6-only bridge has IPv4 addresses %v", addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkGateway wants the container's default route of family via gw, and
// gw to answer a ping from the container.
func checkGateway(t *testing.T, h *netlink.Handle, eth0 netlink.Link, nsPath string, family int, gw netip.Addr) {
	t.Helper()
	routes, _ := h.RouteList(eth0, family)
	var via string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			via = r.Gw.String()
		}
	}
	if via != gw.String() {
		t.Errorf("default route via %q, want %s; routes %v", via, gw, routes)
	}
	if err := nstest.Ping(nsPath, gw); err != nil {
		t.Errorf("ping gateway %s from the container: %v", gw, err)
	}
}
