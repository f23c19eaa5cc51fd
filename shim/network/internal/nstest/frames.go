package nstest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/network/netns"
)

// PacketConn is an AF_PACKET socket on one interface of a network
// namespace: it sends Ethernet frames as they are, bypassing the
// namespace's routing, as a root process in a container with CAP_NET_RAW
// can.
type PacketConn struct {
	fd      int
	ifindex int
	// MAC is the interface's address.
	MAC net.HardwareAddr
}

// ListenPacket opens a packet socket on ifname in the namespace at path.
func ListenPacket(path, ifname string) (*PacketConn, error) {
	var pc *PacketConn
	err := netns.Do(path, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		pc = &PacketConn{fd: fd, ifindex: ifi.Index, MAC: ifi.HardwareAddr}
		return nil
	})
	return pc, err
}

// Close closes the socket.
func (c *PacketConn) Close() error { return unix.Close(c.fd) }

// Send sends one frame as it is.
func (c *PacketConn) Send(frame []byte) error {
	to := &unix.SockaddrLinklayer{Ifindex: c.ifindex, Halen: 6}
	copy(to.Addr[:], frame[:6])
	return unix.Sendto(c.fd, frame, 0, to)
}

// Receive returns the first frame the interface receives (not one it
// sends) that match accepts, or an error when none came within timeout.
func (c *PacketConn) Receive(timeout time.Duration, match func(frame []byte) bool) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no matching frame within %v", timeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// IPv4 protocol numbers and TCP flags the frames use.
const (
	ProtoTCP = unix.IPPROTO_TCP
	ProtoUDP = unix.IPPROTO_UDP

	TCPSyn = 0x02
	TCPAck = 0x10
)

// UDPFrame is an Ethernet frame carrying one UDP datagram from src to dst,
// in IPv4 or IPv6 (the addresses' family).
func UDPFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	binary.BigEndian.PutUint16(udp[6:], transportChecksum(src.Addr(), dst.Addr(), ProtoUDP, udp))
	return frame(dstMAC, srcMAC, src.Addr(), dst.Addr(), ProtoUDP, udp)
}

// TCPSynFrame is an Ethernet frame carrying a TCP SYN from src to dst, in
// IPv4 or IPv6.
func TCPSynFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, seq uint32) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4 // data offset: 5 words, no options
	tcp[13] = TCPSyn
	binary.BigEndian.PutUint16(tcp[14:], 65535) // window
	binary.BigEndian.PutUint16(tcp[16:], transportChecksum(src.Addr(), dst.Addr(), ProtoTCP, tcp))
	return frame(dstMAC, srcMAC, src.Addr(), dst.Addr(), ProtoTCP, tcp)
}

// IPv4Packet is the parsed IPv4 part of a frame.
type IPv4Packet struct {
	Proto    byte
	Src, Dst netip.AddrPort
	TCPFlags byte
	Payload  []byte
}

// ParseIP parses an Ethernet frame carrying a TCP or UDP packet over IPv4
// (ParseIPv4) or IPv6 (without extension headers).
func ParseIP(frame []byte) (IPv4Packet, bool) {
	if len(frame) < 14+40+8 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_IPV6 {
		return ParseIPv4(frame)
	}
	ip := frame[14:]
	return parseL4(ip[6], netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), ip[40:])
}

// ParseIPv4 parses an Ethernet frame carrying a TCP or UDP packet.
func ParseIPv4(frame []byte) (IPv4Packet, bool) {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_IP {
		return IPv4Packet{}, false
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || len(ip) < ihl+8 {
		return IPv4Packet{}, false
	}
	return parseL4(ip[9], netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])), ip[ihl:])
}

func parseL4(proto byte, src, dst netip.Addr, l4 []byte) (IPv4Packet, bool) {
	if len(l4) < 8 {
		return IPv4Packet{}, false
	}
	p := IPv4Packet{Proto: proto}
	p.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:]))
	p.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:]))
	switch p.Proto {
	case ProtoTCP:
		if len(l4) < 20 {
			return IPv4Packet{}, false
		}
		p.TCPFlags = l4[13]
		p.Payload = l4[int(l4[12]>>4)*4:]
	case ProtoUDP:
		p.Payload = l4[8:]
	default:
		return IPv4Packet{}, false
	}
	return p, true
}

func frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, proto byte, l4 []byte) []byte {
	if src.Is6() {
		return frame6(dstMAC, srcMAC, src, dst, proto, l4)
	}
	f := make([]byte, 14+20+len(l4))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(ip[4:], 0x4e54) // id
	ip[6] = 0x40                               // don't fragment
	ip[8] = 64                                 // TTL
	ip[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
	copy(f[34:], l4)
	return f
}

func frame6(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, proto byte, l4 []byte) []byte {
	f := make([]byte, 14+40+len(l4))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IPV6)
	ip := f[14:54]
	ip[0] = 0x60 // version 6
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	ip[6] = proto
	ip[7] = 64 // hop limit
	s16, d16 := src.As16(), dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	copy(f[54:], l4)
	return f
}

// transportChecksum is the TCP or UDP checksum over the IPv4 or IPv6
// pseudo-header and the segment.
func transportChecksum(src, dst netip.Addr, proto byte, seg []byte) uint16 {
	var sum uint32
	for _, w := range [][]byte{src.AsSlice(), dst.AsSlice()} {
		for i := 0; i < len(w); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(w[i:]))
		}
	}
	sum += uint32(proto) + uint32(len(seg))
	c := checksum(seg, sum)
	if c == 0 && proto == ProtoUDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	return c
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
