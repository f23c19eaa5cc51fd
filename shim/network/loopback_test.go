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

	// The host's services: on 127.0.0.1 (the targets) and on the
	// gateway (controls, which the container may reach).
	gw := n.Bridge.Gateway
	udpLo := listenIn(t, host, func() (net.PacketConn, error) { return net.ListenPacket("udp4", "127.0.0.1:0") })
	udpGw := listenIn(t, host, func() (net.PacketConn, error) { return net.ListenPacket("udp4", netip.AddrPortFrom(gw, 0).String()) })
	tcpLo := listenIn(t, host, func() (net.Listener, error) { return net.Listen("tcp4", "127.0.0.1:0") })
	tcpGw := listenIn(t, host, func() (net.Listener, error) { return net.Listen("tcp4", netip.AddrPortFrom(gw, 0).String()) })
	udpLoGot, udpGwGot := received(udpLo), received(udpGw)
	addrOf := func(a net.Addr) netip.AddrPort { return netip.MustParseAddrPort(a.String()) }

	// The attacker: a root process in container b with CAP_NET_RAW,
	// writing frames to the gateway's MAC.
	pc, err := nstest.ListenPacket(nsB, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var gwMAC net.HardwareAddr
	err = netns.Do(host, func() error {
		br, err := netlink.LinkByName(n.Bridge.Name)
		if err == nil {
			gwMAC = br.Attrs().HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	self := attached(t, rb).Address
	from := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 40000) }
	send := func(frame []byte) {
		t.Helper()
		if err := pc.Send(frame); err != nil {
			t.Fatal(err)
		}
	}

	// UDP: to 127.0.0.1 from the container's address and from a forged
	// loopback one, then the control to the gateway.
	send(nstest.UDPFrame(gwMAC, pc.MAC, from(self), addrOf(udpLo.LocalAddr()), []byte("to loopback")))
	send(nstest.UDPFrame(gwMAC, pc.MAC, from(netip.MustParseAddr("127.0.0.2")), addrOf(udpLo.LocalAddr()), []byte("to loopback, forged source")))
	send(nstest.UDPFrame(gwMAC, pc.MAC, from(self), addrOf(udpGw.LocalAddr()), []byte("control")))
	select {
	case got := <-udpGwGot:
		if got != "control" {
			t.Fatalf("gateway listener got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the control datagram to the gateway did not arrive: the frames are wrong")
	}

	// TCP: a SYN to 127.0.0.1 is answered by a SYN-ACK if it arrives;
	// so is the control SYN to the gateway. A SYN to the port published
	// on 127.0.0.1 only must not be DNATed to the container either.
	synAck := func(from netip.AddrPort) func([]byte) bool {
		return func(f []byte) bool {
			p, ok := nstest.ParseIPv4(f)
			return ok && p.Proto == nstest.ProtoTCP && p.Src == from && p.TCPFlags&(nstest.TCPSyn|nstest.TCPAck) == nstest.TCPSyn|nstest.TCPAck
		}
	}
	send(nstest.TCPSynFrame(gwMAC, pc.MAC, from(self), addrOf(tcpLo.Addr()), 1))
	send(nstest.TCPSynFrame(gwMAC, pc.MAC, netip.AddrPortFrom(self, 40001), netip.AddrPortFrom(loopback, hostPort), 1))
	send(nstest.TCPSynFrame(gwMAC, pc.MAC, from(self), addrOf(tcpGw.Addr()), 1))
	if _, err := pc.Receive(5*time.Second, synAck(addrOf(tcpGw.Addr()))); err != nil {
		t.Fatalf("no SYN-ACK for the control SYN to the gateway: %v", err)
	}
	// The controls went the same way after the attacks: anything of
	// those still in flight arrives now.
	if f, err := pc.Receive(500*time.Millisecond, func(f []byte) bool {
		p, ok := nstest.ParseIPv4(f)
		return ok && p.Proto == nstest.ProtoTCP && (p.Src == addrOf(tcpLo.Addr()) || p.Src.Port() == 8080 || p.Src.Port() == hostPort)
	}); err == nil {
		p, _ := nstest.ParseIPv4(f)
		t.Errorf("a SYN from the container to 127.0.0.1 was answered: %+v", p)
	}
	select {
	case got := <-udpLoGot:
		t.Errorf("a host service on 127.0.0.1 received %q from the container", got)
	default:
	}
}
