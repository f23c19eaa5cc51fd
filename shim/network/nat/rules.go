package nat

import (
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/spec"
)

// Rule comments are "<key> <role>", as `nft list table ip hostnet` shows.
const (
	roleMasquerade = "masquerade"
	roleLoopback   = "masquerade-loopback"
	roleHairpin    = "masquerade-hairpin"
	rolePublish    = "publish" // followed by the mapping, e.g. "publish 8080:80/tcp"

	roleGuardSource = "guard-loopback-source"
	roleGuardDNAT   = "guard-loopback-dnat"
	roleGuardDest   = "guard-loopback"
)

// guardOwner owns a bridge's guard rules. A container key cannot contain
// the colon.
func guardOwner(bridge string) string { return guardPrefix + bridge }

const guardPrefix = "bridge:"

// guardRules keep what route_localnet opens on the bridge closed, as
// kube-proxy's KUBE-FIREWALL does since CVE-2020-8558. route_localnet lets
// the replies of the host's connections to a port published on 127.0.0.1
// come back in through the bridge; it also lets a container send to the
// host's loopback services, with any source. In nft syntax:
//
//	iifname BR ip saddr 127.0.0.0/8 drop
//	iifname BR ip daddr 127.0.0.0/8 ct status dnat accept
//	iifname BR ip daddr 127.0.0.0/8 drop
//
// Nothing legitimate comes from a container with a loopback source. The
// only traffic to 127.0.0.0/8 that does is those replies, whose
// connection was DNATed; unlike kube-proxy's rule, neither a loopback
// source nor an established connection is let through, as a container
// can forge both (127.0.0.53:53 to the host's resolver's client port).
// A packet without conntrack ("notrack") has no status and is dropped by
// the last rule.
//
// IPv6 needs no such rules: it has no route_localnet to open, and the
// kernel drops every packet to or from ::1 that arrives on a device other
// than lo (ip6_rcv_core, RFC 4291 2.5.3), before netfilter's prerouting
// hook. Ports are not published on ::1 (CheckPorts), and the publish rules
// of a mapping without a host IP leave ::1 out.
func guardRules(bridge string, ch *nftables.Chain) []*nftables.Rule {
	rule := func(role string, exprs ...[]expr.Any) *nftables.Rule {
		r := &nftables.Rule{Table: ch.Table, Chain: ch, UserData: userdata.AppendString(nil, userdata.TypeComment, guardOwner(bridge)+" "+role)}
		for _, e := range exprs {
			r.Exprs = append(r.Exprs, e...)
		}
		return r
	}
	in := ifname(expr.MetaKeyIIFNAME, bridge, expr.CmpOpEq)
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	accept := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	return []*nftables.Rule{
		rule(roleGuardSource, in, ipIn(offSaddr, loopback), drop),
		rule(roleGuardDNAT, in, ipIn(offDaddr, loopback), ctDNAT(), accept),
		rule(roleGuardDest, in, ipIn(offDaddr, loopback), drop),
	}
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// rulesFor returns the endpoint's rules in the table of family fam. In nft
// syntax, for container C on bridge BR with subnet S publishing HP to CP:
//
//	postrouting: ip saddr C oifname != BR masquerade
//	prerouting:  fib daddr type local tcp dport HP dnat to C:CP
//	output:      fib daddr type local tcp dport HP dnat to C:CP
//	postrouting: oifname BR ip daddr C ct status dnat ip saddr 127.0.0.0/8 masquerade
//	postrouting: oifname BR ip daddr C ct status dnat ip saddr S masquerade
//
// With a host IP, "ip daddr HOSTIP" replaces the fib match; a loopback
// host IP has no prerouting rule, as only the host's own connections may
// reach it (Docker once DNATed packets for 127.0.0.1 from anywhere on the
// link). The last two give DNATed connections a source the container
// answers through the host: 127.0.0.1 (which also needs route_localnet
// on the bridge, see guardRules), and the container itself or a
// neighbour on the bridge, whose replies would otherwise bypass the
// host's conntrack.
//
// IPv6 has the same rules with ip6 matches, but for three: the masquerade
// only with Masquerade6 (else the container's traffic is routed with its
// own address), the fib match leaves ::1 out ("ip6 daddr != ::1"; a
// connection there is refused instead of DNATed into a black hole), and
// there is no loopback masquerade.
func rulesFor(fam nftables.TableFamily, ep Endpoint, chains []*nftables.Chain) []*nftables.Rule {
	pre, out, post := chains[0], chains[1], chains[2]
	v6 := fam == nftables.TableFamilyIPv6
	addr, subnet := ep.Addr, ep.Subnet
	if v6 {
		addr, subnet = ep.Addr6, ep.Subnet6
	}
	if !addr.IsValid() {
		return nil
	}
	rule := func(ch *nftables.Chain, role string, exprs ...[]expr.Any) *nftables.Rule {
		r := &nftables.Rule{Table: ch.Table, Chain: ch, UserData: userdata.AppendString(nil, userdata.TypeComment, ep.Key+" "+role)}
		for _, e := range exprs {
			r.Exprs = append(r.Exprs, e...)
		}
		return r
	}
	masq := []expr.Any{&expr.Masq{}}
	var rules []*nftables.Rule
	if !v6 || ep.Masquerade6 {
		rules = append(rules, rule(post, roleMasquerade, ipAddr(offSaddr, addr), ifname(expr.MetaKeyOIFNAME, ep.Bridge, expr.CmpOpNeq), masq))
	}
	published := 0
	for _, p := range ep.Ports {
		if p.HostIP.IsValid() && p.HostIP.Is6() != v6 {
			continue // the other family's
		}
		published++
		role := rolePublish + " " + p.String()
		match := fibLocal()
		if v6 {
			match = append(match, ipAddrCmp(offDaddr, ip6Loopback, expr.CmpOpNeq)...)
		}
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			match = ipAddr(offDaddr, p.HostIP)
		}
		natFamily := uint32(unix.NFPROTO_IPV4)
		if v6 {
			natFamily = unix.NFPROTO_IPV6
		}
		dnat := []expr.Any{
			&expr.Immediate{Register: 1, Data: addr.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: natFamily, RegAddrMin: 1, RegProtoMin: 2},
		}
		if !p.HostIP.IsLoopback() {
			rules = append(rules, rule(pre, role, match, dport(p), dnat))
		}
		rules = append(rules, rule(out, role, match, dport(p), dnat))
	}
	if published == 0 {
		return rules
	}
	dnated := append(ifname(expr.MetaKeyOIFNAME, ep.Bridge, expr.CmpOpEq), append(ipAddr(offDaddr, addr), ctDNAT()...)...)
	if !v6 {
		rules = append(rules, rule(post, roleLoopback, dnated, ipIn(offSaddr, loopback), masq))
	}
	return append(rules, rule(post, roleHairpin, dnated, ipIn(offSaddr, subnet), masq))
}

var ip6Loopback = netip.IPv6Loopback()

// parseComment splits a rule's comment into its owner and role.
func parseComment(r *nftables.Rule) (owner, role string) {
	c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	owner, role, _ = strings.Cut(c, " ")
	return owner, role
}

// Offsets of the source and destination addresses in the IPv4 header;
// addrOffset gives IPv6's.
const (
	offSaddr = 12
	offDaddr = 16
)

// addrOffset is where the address at IPv4 offset off is in a's family's
// header: IPv6's source is at 8, its destination at 24.
func addrOffset(off uint32, a netip.Addr) uint32 {
	if !a.Is6() {
		return off
	}
	if off == offSaddr {
		return 8
	}
	return 24
}

func ipAddr(offset uint32, a netip.Addr) []expr.Any {
	return ipAddrCmp(offset, a, expr.CmpOpEq)
}

func ipAddrCmp(offset uint32, a netip.Addr, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOffset(offset, a), Len: uint32(a.BitLen() / 8)},
		&expr.Cmp{Op: op, Register: 1, Data: a.AsSlice()},
	}
}

// ipIn matches the source or destination address (offset) in p.
func ipIn(offset uint32, p netip.Prefix) []expr.Any {
	n := uint32(p.Addr().BitLen() / 8)
	mask := make([]byte, n)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOffset(offset, p.Addr()), Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// ifname matches the input or output interface (key) by name.
func ifname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// fibLocal matches packets to any of the host's addresses, 127.0.0.1 (and
// ::1) included, as Docker's "-m addrtype --dst-type LOCAL" does.
func fibLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func dport(p spec.PortMapping) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if p.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
	}
}

// ctDNAT matches connections whose destination was rewritten.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5
