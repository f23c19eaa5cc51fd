package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
)

// bridgeNetwork6 is bridgeNetwork with an IPv6 subnet (a ULA /64 of this
// test process's own) and, unless dual, without the IPv4 one.
func bridgeNetwork6(t testing.TB, dual bool) config.Network {
	t.Helper()
	n := bridgeNetwork(t, 24)
	b := &n.Bridge
	b.Subnet6 = netip.MustParsePrefix(fmt.Sprintf("fd00:235:%x::/64", os.Getpid()&0xffff))
	b.Gateway6 = b.Subnet6.Addr().Next()
	b.GatewayMode6 = config.GatewayModeNAT
	if !dual {
		b.Subnet, b.Gateway = netip.Prefix{}, netip.Addr{}
	}
	return n
}

// hostsAddrs returns the addresses /etc/hosts names the container by.
func hostsAddrs(t *testing.T, r Request) []netip.Addr {
	t.Helper()
	hosts, err := os.ReadFile(r.Bundle.Hosts())
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for line := range strings.Lines(string(hosts)) {
		if f := strings.Fields(line); len(f) == 2 && f[1] == r.ID {
			out = append(out, netip.MustParseAddr(f[0]))
		}
	}
	return out
}

// Issue 15: a dual-stack container has an address of each family (in
// /etc/hosts too), reaches its neighbour over both, the gateway over both,
// and its ports published over IPv6: on a host address, and without a host
// IP on every one but ::1. Teardown leaves no lease or rule of either
// family.
func TestBridgeModeDualStack(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork6(t, true)
	hostPort := uint16(20000 + os.Getpid()%10000)
	gw4, gw6 := n.Bridge.Gateway, n.Bridge.Gateway6
	ra := bridgeBundle(t, n, "a", fmt.Sprintf("[%s]:%d:8080,%d:8080", gw6, hostPort, hostPort+1))
	rb := bridgeBundle(t, n, "b", "")
	for _, r := range []Request{rb, ra} { // b makes the bridge, whose gateway a publishes on
		if _, err := prepare(r); err != nil {
			t.Fatalf("Prepare %s: %v", r.ID, err)
		}
	}
	// Before Linux 6.17 there is no per-bridge force_forwarding, and the
	// connections from containers to a publication below are forwarded
	// only with the namespace's all.forwarding, which hostnet leaves to
	// the admin (the create warns). This is the test's own namespace.
	if _, err := os.Stat("/proc/sys/net/ipv6/conf/" + n.Bridge.Name + "/force_forwarding"); errors.Is(err, os.ErrNotExist) {
		const allForwarding = "/proc/sys/net/ipv6/conf/all/forwarding"
		was, err := os.ReadFile(allForwarding)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(allForwarding, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(allForwarding, was, 0o644) })
	}
	a, b := attached(t, ra), attached(t, rb)
	for _, at := range []attachment{a, b} {
		if !n.Bridge.Subnet.Contains(at.Address) || !n.Bridge.Subnet6.Contains(at.Address6) || len(at.NATRules) == 0 {
			t.Fatalf("%s: recorded %s, %s, rules %v", at.Key, at.Address, at.Address6, at.NATRules)
		}
	}
	if got := hostsAddrs(t, ra); len(got) != 2 || got[0] != a.Address || got[1] != a.Address6 {
		t.Errorf("/etc/hosts names a by %v, want %s and %s", got, a.Address, a.Address6)
	}
	nsA, nsB := ra.Bundle.NetNS(), rb.Bundle.NetNS()
	serve(t, nsA, "a", 8080)
	serve(t, nsB, "b", 8080)
	ln, err := net.Listen("tcp6", netip.AddrPortFrom(gw6, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	answer(t, ln, "host")
	gwPort := netip.MustParseAddrPort(ln.Addr().String()).Port()

	for _, tc := range []struct {
		name string
		from string
		to   netip.AddrPort
		want string
	}{
		{"b to a over IPv6", nsB, netip.AddrPortFrom(a.Address6, 8080), "a"},
		{"b to a over IPv4", nsB, netip.AddrPortFrom(a.Address, 8080), "a"},
		{"a to b over IPv6", nsA, netip.AddrPortFrom(b.Address6, 8080), "b"},
		{"a to the IPv6 gateway", nsA, netip.AddrPortFrom(gw6, gwPort), "host"},
		{"host to a over IPv6", "", netip.AddrPortFrom(a.Address6, 8080), "a"},
		{"host, published on the IPv6 gateway", "", netip.AddrPortFrom(gw6, hostPort), "a"},
		{"host, published without a host IP, IPv6", "", netip.AddrPortFrom(gw6, hostPort+1), "a"},
		{"host, published without a host IP, IPv4", "", netip.AddrPortFrom(gw4, hostPort+1), "a"},
		{"b via the host's IPv6 publication", nsB, netip.AddrPortFrom(gw6, hostPort+1), "a"},
		{"a hairpin over IPv6", nsA, netip.AddrPortFrom(gw6, hostPort+1), "a"},
	} {
		if got, err := fetch(tc.from, tc.to); err != nil || got != tc.want {
			t.Errorf("%s: %s answered %q, %v; want %q", tc.name, tc.to, got, err, tc.want)
		}
	}
	// ::1 is left out of the publication without a host IP: refused at
	// once, as nothing listens there, not DNATed into a black hole.
	if _, err := fetch("", netip.AddrPortFrom(netip.IPv6Loopback(), hostPort+1)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("host to [::1]:%d: %v, want connection refused", hostPort+1, err)
	}
	for _, gw := range []netip.Addr{gw4, gw6} {
		if err := nstest.Ping(nsA, gw); err != nil {
			t.Errorf("ping gateway %s: %v", gw, err)
		}
	}

	for _, r := range []Request{ra, rb} {
		if err := Teardown(context.Background(), r.Bundle); err != nil {
			t.Fatal(err)
		}
	}
	checkNothingLeft(t, n, ra, rb)
}

// An IPv6-only container: no IPv4 address, its name on its IPv6 one, and
// a publication on an IPv4 host IP is refused before anything is made.
func TestBridgeModeIPv6Only(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork6(t, false)
	r := bridgeBundle(t, n, "six", "")
	if _, err := prepare(r); err != nil {
		t.Fatal(err)
	}
	a := attached(t, r)
	if a.Address.IsValid() || !n.Bridge.Subnet6.Contains(a.Address6) {
		t.Errorf("recorded addresses %s and %s, want an IPv6 one only", a.Address, a.Address6)
	}
	if got := hostsAddrs(t, r); len(got) != 1 || got[0] != a.Address6 {
		t.Errorf("/etc/hosts names the container by %v, want %s", got, a.Address6)
	}
	err := netns.Do(r.Bundle.NetNS(), func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if addrs, _ := netlink.AddrList(eth0, netlink.FAMILY_V4); len(addrs) != 0 {
			t.Errorf("IPv4 addresses on eth0: %v", addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nstest.Ping(r.Bundle.NetNS(), n.Bridge.Gateway6); err != nil {
		t.Errorf("ping gateway: %v", err)
	}

	bad := bridgeBundle(t, n, "four", "127.0.0.1:8080:80")
	_, err = prepare(bad)
	if want := "cannot publish port 127.0.0.1:8080:80/tcp: the container has no IPv4 address"; !errors.Is(err, errdefs.ErrInvalidArgument) || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("IPv4 publication on an IPv6-only bridge: %v, want invalid argument containing %q", err, want)
	}
	checkNothingLeftFor(t, bad)
	loop := bridgeBundle(t, n, "loop", "[::1]:8080:80")
	_, err = prepare(loop)
	if want := "connections to ::1 cannot be forwarded into a container"; !errors.Is(err, errdefs.ErrInvalidArgument) || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("publication on ::1: %v, want invalid argument containing %q", err, want)
	}
	checkNothingLeftFor(t, loop)
	if err := Teardown(context.Background(), r.Bundle); err != nil {
		t.Fatal(err)
	}
	checkNothingLeft(t, n, r, bad, loop)
}

// network.bridge.gateway_mode6: "nat" masquerades what a container sends
// beyond the host over IPv6 (the far end sees the host's address),
// "routed" does not (it sees the container's). The far end is a namespace
// behind a veth of the test's own namespace, which forwards IPv6 (it is
// the test's, not the host's).
func TestBridgeModeGatewayMode6(t *testing.T) {
	nstest.NeedRoot(t)
	const allForwarding = "/proc/sys/net/ipv6/conf/all/forwarding"
	was, err := os.ReadFile(allForwarding)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(allForwarding, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(allForwarding, was, 0o644) })
	pid := os.Getpid()
	far := fakeHost(t)
	uplink := netip.MustParsePrefix(fmt.Sprintf("fd00:236:%x::1/64", pid&0xffff))
	farAddr := uplink.Addr().Next()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("hnu%d", pid)}, PeerName: "eth0"}
	farNS, err := os.Open(far) //nolint:gosec // the test's own netns pin
	if err != nil {
		t.Fatal(err)
	}
	defer farNS.Close()
	veth.PeerNamespace = netlink.NsFd(farNS.Fd())
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: prefixNet(uplink), Flags: nodad}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	n := bridgeNetwork6(t, true)
	err = netns.Do(far, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(eth0, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(farAddr, 64)), Flags: nodad}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(eth0); err != nil {
			return err
		}
		// Back to the containers' own addresses, for routed mode.
		return netlink.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: prefixNet(n.Bridge.Subnet6), Gw: uplink.Addr().AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The far end answers with the address it sees the client at.
	ln := listenIn(t, far, func() (net.Listener, error) { return net.Listen("tcp6", netip.AddrPortFrom(farAddr, 0).String()) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, netip.MustParseAddrPort(c.RemoteAddr().String()).Addr())
			c.Close()
		}
	}()
	to := netip.MustParseAddrPort(ln.Addr().String())
	for _, mode := range []string{config.GatewayModeNAT, config.GatewayModeRouted} {
		n.Bridge.GatewayMode6 = mode
		r := bridgeBundle(t, n, "mode-"+mode, "")
		if _, err := prepare(r); err != nil {
			t.Fatal(err)
		}
		want := uplink.Addr()
		if mode == config.GatewayModeRouted {
			want = attached(t, r).Address6
		}
		if got, err := fetch(r.Bundle.NetNS(), to); err != nil || got != want.String() {
			t.Errorf("gateway_mode6 %s: the far end saw %q, %v; want %s", mode, got, err, want)
		}
		if err := Teardown(context.Background(), r.Bundle); err != nil {
			t.Fatal(err)
		}
	}
}

const nodad = unix.IFA_F_NODAD

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// The IPv6 twin of TestBridgeLoopbackUnreachable (CVE-2020-8558): a
// container's crafted frames to the host's ::1, or with ::1 as their
// source, reach no host service. IPv6 has no route_localnet and the kernel
// drops such packets off lo (RFC 4291 2.5.3); this holds it to that.
func TestBridgeLoopback6Unreachable(t *testing.T) {
	nstest.NeedRoot(t)
	host := fakeHost(t)
	n := bridgeNetwork6(t, true)
	r := bridgeBundle(t, n, "attacker6", "")
	prepareIn(t, host, r)
	loopback := netip.IPv6Loopback()
	h := listenHost(t, host, loopback, n.Bridge.Gateway6)
	a := newRawAttacker(t, host, r.Bundle.NetNS(), n.Bridge.Name)
	self := netip.AddrPortFrom(attached(t, r).Address6, 40000)
	forged := netip.AddrPortFrom(loopback, 40000)
	a.udp(self, addrOf(h.udpLo.LocalAddr()), "to ::1")
	a.udp(forged, addrOf(h.udpLo.LocalAddr()), "to ::1, forged source")
	a.udp(forged, addrOf(h.udpGw.LocalAddr()), "to the gateway, forged source")
	h.control(t, a, self)
	a.syn(self, addrOf(h.tcpLo.Addr()))
	a.syn(self, addrOf(h.tcpGw.Addr()))
	if _, err := a.answer(5*time.Second, false, is(addrOf(h.tcpGw.Addr()))); err != nil {
		t.Fatalf("no SYN-ACK for the control SYN to the gateway: %v", err)
	}
	if f, err := a.answer(500*time.Millisecond, false, is(addrOf(h.tcpLo.Addr()))); err == nil {
		p, _ := nstest.ParseIP(f)
		t.Errorf("a SYN from the container to ::1 was answered: %+v", p)
	}
	select {
	case got := <-h.udpLoGot:
		t.Errorf("a host service on ::1 received %q from the container", got)
	case got := <-h.udpGwGot:
		t.Errorf("the gateway's service received %q with a forged ::1 source", got)
	default:
	}
}
