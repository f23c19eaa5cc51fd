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
)

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// rulesFor returns the endpoint's rules. In nft syntax, for container C on
// bridge BR with subnet S publishing HP to CP:
//
//	postrouting: ip saddr C oifname != BR masquerade
//	prerouting:  fib daddr type local tcp dport HP dnat to C:CP
//	output:      fib daddr type local tcp dport HP dnat to C:CP
//	postrouting: oifname BR ip daddr C ct status dnat ip saddr 127.0.0.0/8 masquerade
//	postrouting: oifname BR ip daddr C ct status dnat ip saddr S masquerade
//
// With a host IP, "ip daddr HOSTIP" replaces the fib match. The last two
// give DNATed connections a source the container answers through the
// host: 127.0.0.1 (which also needs route_localnet on the bridge), and the
// container itself or a neighbour on the bridge, whose replies would
// otherwise bypass the host's conntrack.
func rulesFor(ep Endpoint, chains []*nftables.Chain) []*nftables.Rule {
	pre, out, post := chains[0], chains[1], chains[2]
	rule := func(ch *nftables.Chain, role string, exprs ...[]expr.Any) *nftables.Rule {
		r := &nftables.Rule{Table: ch.Table, Chain: ch, UserData: userdata.AppendString(nil, userdata.TypeComment, ep.Key+" "+role)}
		for _, e := range exprs {
			r.Exprs = append(r.Exprs, e...)
		}
		return r
	}
	masq := []expr.Any{&expr.Masq{}}
	rules := []*nftables.Rule{
		rule(post, roleMasquerade, ipAddr(offSaddr, ep.Addr), oifname(ep.Bridge, expr.CmpOpNeq), masq),
	}
	if len(ep.Ports) == 0 {
		return rules
	}
	for _, p := range ep.Ports {
		role := rolePublish + " " + p.String()
		match := fibLocal()
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			match = ipAddr(offDaddr, p.HostIP)
		}
		dnat := []expr.Any{
			&expr.Immediate{Register: 1, Data: ep.Addr.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
		}
		rules = append(rules,
			rule(pre, role, match, dport(p), dnat),
			rule(out, role, match, dport(p), dnat),
		)
	}
	dnated := append(oifname(ep.Bridge, expr.CmpOpEq), append(ipAddr(offDaddr, ep.Addr), ctDNAT()...)...)
	return append(rules,
		rule(post, roleLoopback, dnated, ipSaddrIn(loopback), masq),
		rule(post, roleHairpin, dnated, ipSaddrIn(ep.Subnet), masq),
	)
}

// parseComment splits a rule's comment into its owner and role.
func parseComment(r *nftables.Rule) (owner, role string) {
	c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	owner, role, _ = strings.Cut(c, " ")
	return owner, role
}

// Offsets in the IPv4 header.
const (
	offSaddr = 12
	offDaddr = 16
)

func ipAddr(offset uint32, a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
	}
}

func ipSaddrIn(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offSaddr, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

func oifname(name string, op expr.CmpOp) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// fibLocal matches packets to any of the host's addresses, 127.0.0.1
// included, as Docker's "-m addrtype --dst-type LOCAL" does.
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
