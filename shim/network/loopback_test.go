package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
)

// fakeHost is a network namespace standing in for the host, so that
// attacks on the host's loopback services only ever reach the test's own.
// Its path is pinned in a temporary directory; lo is up.
func fakeHost(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "host-netns")
	if err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Error(err)
		}
	})
	err := netns.Do(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// prepareIn runs Prepare in the namespace at host, and Teardown there when
// the test ends.
func prepareIn(t *testing.T, host string, r Request) {
	t.Helper()
	err := netns.Do(host, func() error {
		_, err := prepare(r)
		return err
	})
	if err != nil {
		t.Fatalf("Prepare %s: %v", r.ID, err)
	}
	t.Cleanup(func() {
		if err := netns.Do(host, func() error { return Teardown(context.Background(), r.Bundle) }); err != nil {
			t.Error(err)
		}
	})
}

// listenIn opens a listener in the namespace at path, closed when the
// test ends.
func listenIn[T interface{ Close() error }](t *testing.T, path string, listen func() (T, error)) T {
	t.Helper()
	var l T
	err := netns.Do(path, func() (err error) {
		l, err = listen()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// received collects what a UDP socket receives.
func received(c net.PacketConn) <-chan string {
	out := make(chan string, 16)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			out <- string(buf[:n])
		}
	}()
	return out
}

// hostServices are what a crafted frame aims at in the host's namespace:
// UDP and TCP services on loopback (the targets) and on the bridge's
// gateway (controls, which a container may reach).
type hostServices struct {
	udpLo, udpGw       net.PacketConn
	tcpLo, tcpGw       net.Listener
	udpLoGot, udpGwGot <-chan string
}

func listenHost(t *testing.T, host string, loopback, gw netip.Addr) *hostServices {
	t.Helper()
	network := "4"
	if gw.Is6() {
		network = "6"
	}
	at := func(a netip.Addr) string { return netip.AddrPortFrom(a, 0).String() }
	h := &hostServices{
		udpLo: listenIn(t, host, func() (net.PacketConn, error) { return net.ListenPacket("udp"+network, at(loopback)) }),
		udpGw: listenIn(t, host, func() (net.PacketConn, error) { return net.ListenPacket("udp"+network, at(gw)) }),
		tcpLo: listenIn(t, host, func() (net.Listener, error) { return net.Listen("tcp"+network, at(loopback)) }),
		tcpGw: listenIn(t, host, func() (net.Listener, error) { return net.Listen("tcp"+network, at(gw)) }),
	}
	h.udpLoGot, h.udpGwGot = received(h.udpLo), received(h.udpGw)
	return h
}

func addrOf(a net.Addr) netip.AddrPort { return netip.MustParseAddrPort(a.String()) }

// rawAttacker is a root process in a container with CAP_NET_RAW: it writes
// frames of its own making on the container's eth0 to the gateway's MAC
// (the bridge's), from any source address, and reads what comes back.
type rawAttacker struct {
	t     *testing.T
	pc    *nstest.PacketConn
	gwMAC net.HardwareAddr
}

func newRawAttacker(t *testing.T, host, containerNS, bridge string) *rawAttacker {
	t.Helper()
	pc, err := nstest.ListenPacket(containerNS, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	a := &rawAttacker{t: t, pc: pc}
	err = netns.Do(host, func() error {
		br, err := netlink.LinkByName(bridge)
		if err == nil {
			a.gwMAC = br.Attrs().HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *rawAttacker) udp(src, dst netip.AddrPort, payload string) {
	a.t.Helper()
	if err := a.pc.Send(nstest.UDPFrame(a.gwMAC, a.pc.MAC, src, dst, []byte(payload))); err != nil {
		a.t.Fatal(err)
	}
}

func (a *rawAttacker) syn(src, dst netip.AddrPort) {
	a.t.Helper()
	if err := a.pc.Send(nstest.TCPSynFrame(a.gwMAC, a.pc.MAC, src, dst, 1)); err != nil {
		a.t.Fatal(err)
	}
}

// answer waits up to d for a TCP SYN-ACK (or, with anyTCP, any TCP
// segment) from one of srcs.
func (a *rawAttacker) answer(d time.Duration, anyTCP bool, srcs ...func(netip.AddrPort) bool) ([]byte, error) {
	return a.pc.Receive(d, func(f []byte) bool {
		p, ok := nstest.ParseIP(f)
		if !ok || p.Proto != nstest.ProtoTCP {
			return false
		}
		if !anyTCP && p.TCPFlags&(nstest.TCPSyn|nstest.TCPAck) != nstest.TCPSyn|nstest.TCPAck {
			return false
		}
		for _, from := range srcs {
			if from(p.Src) {
				return true
			}
		}
		return false
	})
}

func is(want netip.AddrPort) func(netip.AddrPort) bool {
	return func(a netip.AddrPort) bool { return a == want }
}

// control sends a datagram the container may send, to the gateway's
// service, and fails the test when it does not arrive: then the frames,
// not the protection, are wrong.
func (h *hostServices) control(t *testing.T, a *rawAttacker, self netip.AddrPort) {
	t.Helper()
	a.udp(self, addrOf(h.udpGw.LocalAddr()), "control")
	select {
	case got := <-h.udpGwGot:
		if got != "control" {
			t.Fatalf("gateway listener got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the control datagram to the gateway did not arrive: the frames are wrong")
	}
}

// Issue 10, item 1 (CVE-2020-8558): route_localnet on the bridge must not
// let a container reach the host's loopback services with frames it
// crafts, while the host's connections to a port published on 127.0.0.1
// keep working. Everything happens in a namespace standing in for the
// host.
func TestBridgeLoopbackUnreachable(t *testing.T) {
	nstest.NeedRoot(t)
	host := fakeHost(t)
	n := bridgeNetwork(t, 24)
	hostPort := uint16(20000 + os.Getpid()%10000)
	ra := bridgeBundle(t, n, "published", fmt.Sprintf("127.0.0.1:%d:8080", hostPort))
	rb := bridgeBundle(t, n, "attacker", "")
	prepareIn(t, host, ra)
	prepareIn(t, host, rb)
	nsA, nsB := ra.Bundle.NetNS(), rb.Bundle.NetNS()
	serve(t, nsA, "published", 8080)

	// Localhost publishing: the host's own connection to 127.0.0.1.
	loopback := netip.MustParseAddr("127.0.0.1")
	if got, err := fetch(host, netip.AddrPortFrom(loopback, hostPort)); err != nil || got != "published" {
		t.Fatalf("host to 127.0.0.1:%d = %q, %v; want the published container", hostPort, got, err)
	}

	// The host's services, and the attacker: a root process in
	// container b with CAP_NET_RAW, writing frames to the gateway's MAC.
	h := listenHost(t, host, loopback, n.Bridge.Gateway)
	a := newRawAttacker(t, host, nsB, n.Bridge.Name)
	self := attached(t, rb).Address
	from := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(self, p) }

	// UDP: to 127.0.0.1 from the container's address and from a forged
	// loopback one, then the control to the gateway.
	a.udp(from(40000), addrOf(h.udpLo.LocalAddr()), "to loopback")
	a.udp(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 40000), addrOf(h.udpLo.LocalAddr()), "to loopback, forged source")
	h.control(t, a, from(40000))

	// TCP: a SYN to 127.0.0.1 is answered by a SYN-ACK if it arrives;
	// so is the control SYN to the gateway. A SYN to the port published
	// on 127.0.0.1 only must not be DNATed to the container either.
	a.syn(from(40000), addrOf(h.tcpLo.Addr()))
	a.syn(from(40001), netip.AddrPortFrom(loopback, hostPort))
	a.syn(from(40000), addrOf(h.tcpGw.Addr()))
	if _, err := a.answer(5*time.Second, false, is(addrOf(h.tcpGw.Addr()))); err != nil {
		t.Fatalf("no SYN-ACK for the control SYN to the gateway: %v", err)
	}
	// The controls went the same way after the attacks: anything of
	// those still in flight arrives now.
	if f, err := a.answer(500*time.Millisecond, true, is(addrOf(h.tcpLo.Addr())),
		func(p netip.AddrPort) bool { return p.Port() == 8080 || p.Port() == hostPort }); err == nil {
		p, _ := nstest.ParseIP(f)
		t.Errorf("a SYN from the container to 127.0.0.1 was answered: %+v", p)
	}
	select {
	case got := <-h.udpLoGot:
		t.Errorf("a host service on 127.0.0.1 received %q from the container", got)
	default:
	}
}
