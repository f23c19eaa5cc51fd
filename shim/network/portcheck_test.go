package network

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hostnet-dev/hostnet/spec"
)

func TestCheckPortsFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	err = checkPortsFree([]spec.PortMapping{{HostPort: 1, ContainerPort: port, Protocol: "tcp"}})
	if err == nil {
		t.Fatalf("port %d is bound by the test but was reported free", port)
	}
	want := "port " + strconv.Itoa(int(port)) + "/tcp is already in use on the host by pid " + strconv.Itoa(os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to contain %q", err, want)
	}

	// The same number over UDP is free, and so is the TCP port once closed.
	if err := checkPortsFree([]spec.PortMapping{{ContainerPort: port, Protocol: "udp"}}); err != nil {
		t.Errorf("udp/%d: %v", port, err)
	}
	ln.Close()
	if err := checkPortsFree([]spec.PortMapping{{ContainerPort: port, Protocol: "tcp"}}); err != nil {
		t.Errorf("closed port: %v", err)
	}
}

func TestCheckPortsFreeUDP(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	err = checkPortsFree([]spec.PortMapping{{ContainerPort: port, Protocol: "udp"}})
	if err == nil || !strings.Contains(err.Error(), "/udp is already in use") {
		t.Errorf("err = %v", err)
	}
}

// TestCheckPortsFreeConnectedUDP: a connected UDP socket (a client's, such
// as a resolver's query) does not take its port from a host-mode
// container: it receives nothing but its peer's datagrams
// (procnet.TestListeningConnectedUDP); an unconnected one on the same
// port number does.
func TestCheckPortsFreeConnectedUDP(t *testing.T) {
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := net.DialUDP("udp4", nil, peer.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	if err := checkPortsFree([]spec.PortMapping{{ContainerPort: port, Protocol: "udp"}}); err != nil {
		t.Errorf("port %d/udp of a connected socket: %v, want free", port, err)
	}
}
