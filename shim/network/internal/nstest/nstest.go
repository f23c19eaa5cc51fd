// Package nstest runs test code inside network namespaces.
package nstest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/hostnet-dev/hostnet/shim/network/netns"
)

// Ping sends one ICMP (or ICMPv6) echo to dst from the namespace at path
// and waits for the reply.
func Ping(path string, dst netip.Addr) error {
	network, any, proto := "ip4:icmp", "0.0.0.0", 1
	var echo, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, any, proto = "ip6:ipv6-icmp", "::", 58
		echo, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	return netns.Do(path, func() error {
		c, err := icmp.ListenPacket(network, any)
		if err != nil {
			return err
		}
		defer c.Close()
		msg := icmp.Message{Type: echo, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("hostnet")}}
		b, err := msg.Marshal(nil) // the kernel computes ICMPv6's checksum
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		for {
			n, peer, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("no echo reply from %s: %w", dst, err)
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err == nil && m.Type == reply && peer.String() == dst.String() {
				return nil
			}
		}
	})
}
