package procnet

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
	}{
		{"0100007F:1F90", "127.0.0.1", 8080},
		{"00000000:0035", "0.0.0.0", 53},
		{"00000000000000000000000001000000:0016", "::1", 22},
		{"00000000000000000000000000000000:01BB", "::", 443},
		// An IPv4-mapped address in tcp6 is the IPv4 one.
		{"0000000000000000FFFF00000100007F:0050", "127.0.0.1", 80},
	} {
		addr, port, err := ParseAddr(tc.in)
		if err != nil || addr != netip.MustParseAddr(tc.addr) || port != tc.port {
			t.Errorf("ParseAddr(%q) = %s, %d, %v; want %s, %d", tc.in, addr, port, err, tc.addr, tc.port)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:XYZ", "01007F:0050", "zz00007F:0050"} {
		if _, _, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q): no error", bad)
		}
	}
}

// TestListeningFiles: TCP listeners and unconnected UDP sockets are
// listed; established TCP and connected UDP sockets are not.
func TestListeningFiles(t *testing.T) {
	dir := t.TempDir()
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	files := map[string]string{
		"tcp": header +
			"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n" +
			"   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 112 1 0 100 0 0 10 0\n",
		"udp": header +
			"   2: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 113 2 0 0\n" +
			"   3: 0100007F:D431 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 114 2 0 0\n",
		"udp6": header +
			"   4: 00000000000000000000000001000000:0202 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 115 2 0 0\n",
		// tcp6 missing: a host without IPv6.
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Listening(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{"tcp", netip.MustParseAddr("127.0.0.1"), 8080, "111"},
		{"udp", netip.MustParseAddr("0.0.0.0"), 53, "113"},
		{"udp", netip.MustParseAddr("::1"), 514, "115"},
	}
	if len(got) != len(want) {
		t.Fatalf("Listening = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("socket %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestListeningConnectedUDP shows, on the real kernel, why a connected
// UDP socket is no holder of its port: a datagram another socket sends to
// it is refused (ICMP port unreachable) as if nothing were bound there,
// while an unconnected socket receives it. Listening agrees: the
// unconnected socket is listed, the connected one is not. The connected
// socket does keep bind(2) of its address from succeeding while it lives,
// as an outgoing TCP connection does.
func TestListeningConnectedUDP(t *testing.T) {
	loopback := netip.MustParseAddr("127.0.0.1")
	server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	serverAddr := server.LocalAddr().(*net.UDPAddr).AddrPort()
	client, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(serverAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	clientAddr := client.LocalAddr().(*net.UDPAddr).AddrPort()

	// What the kernel does: a third socket's datagram reaches the
	// unconnected server, and is refused at the connected client's port.
	for _, tc := range []struct {
		to        netip.AddrPort
		delivered bool
	}{{serverAddr, true}, {clientAddr, false}} {
		other, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(tc.to))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if tc.delivered {
			buf := make([]byte, 8)
			server.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, from, err := server.ReadFromUDPAddrPort(buf); err != nil || from != other.LocalAddr().(*net.UDPAddr).AddrPort() {
				t.Errorf("unconnected socket %s: read %v from %s, want the datagram of %s", tc.to, err, from, other.LocalAddr())
			}
		} else {
			// The ICMP port unreachable comes back to the sender as
			// ECONNREFUSED on its next read.
			other.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := other.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("datagram to connected socket %s: %v, want ECONNREFUSED (nothing receives it)", tc.to, err)
			}
		}
		other.Close()
	}
	// bind(2) of the connected socket's address is refused while it lives.
	if c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(clientAddr)); err == nil {
		c.Close()
		t.Errorf("bind %s beside a connected socket succeeded, want EADDRINUSE", clientAddr)
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("bind %s beside a connected socket: %v, want EADDRINUSE", clientAddr, err)
	}

	socks, err := Listening("/proc/self/net")
	if err != nil {
		t.Fatal(err)
	}
	found := map[netip.AddrPort]bool{}
	for _, s := range socks {
		if s.Proto == "udp" {
			found[netip.AddrPortFrom(s.Addr, s.Port)] = true
		}
	}
	if !found[serverAddr] {
		t.Errorf("Listening does not list the unconnected UDP socket %s", serverAddr)
	}
	if found[clientAddr] {
		t.Errorf("Listening lists the connected UDP socket %s", clientAddr)
	}
}

// TestHolders: the test's own listener is held by the test's pid.
func TestHolders(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	socks, err := Listening("/proc/self/net")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, s := range socks {
		if s.Proto == "tcp" && s.Port == port {
			inodes[s.Inode] = true
		}
	}
	if len(inodes) != 1 {
		t.Fatalf("listener on port %d: inodes %v, want one", port, inodes)
	}
	for inode := range inodes {
		if pids := Holders("/proc", inodes)[inode]; len(pids) != 1 || pids[0] != os.Getpid() {
			t.Errorf("Holders = %v, want [%d]", pids, os.Getpid())
		}
	}
	if Comm("/proc", os.Getpid()) == "" || Command("/proc", os.Getpid()) == "" {
		t.Errorf("no command for pid %d", os.Getpid())
	}
}
