package inspect

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/network/fwd"
)

// nftables checks that hostnet can talk to nftables over netlink: bridge
// mode's NAT and the port checks need it.
func (d *doctor) nftables() {
	c, err := nftables.New()
	var tables []*nftables.Table
	if err == nil {
		tables, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	}
	if err != nil {
		d.add("nftables", StatusFail, "run as root (CAP_NET_ADMIN) on a kernel with nf_tables (modprobe nf_tables)",
			"cannot talk to nftables over netlink: %v", err)
		return
	}
	d.add("nftables", StatusOK, "", "nftables answers over netlink (%d IPv4 tables)", len(tables))
}

// forwarding checks ip_forward and what drops forwarded traffic: an
// iptables FORWARD policy of DROP (which bridge mode answers with
// per-container accept rules, if it has the iptables command of the
// chain's flavour), the same of ip6tables where the bridge has an IPv6
// subnet, and nftables forward chains of other tables, which no rule in
// another table can overrule.
func (d *doctor) forwarding() {
	switch b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); {
	case err != nil:
		d.add("ip_forward", StatusWarn, "", "cannot read net.ipv4.ip_forward: %v", err)
	case strings.TrimSpace(string(b)) == "1":
		d.add("ip_forward", StatusOK, "", "net.ipv4.ip_forward = 1")
	default:
		d.add("ip_forward", StatusOK, "", "net.ipv4.ip_forward = 0: bridge mode sets it to 1 when it attaches a container")
	}
	d.forwardPolicies(fwd.Flavours, fwd.List)
	d.nftForwardDrops()
}

// forwardPolicies reports the FORWARD policy of each iptables flavour
// (flavours(false)) and, when the bridge has subnet6, of each ip6tables
// one, reading the chains with list.
func (d *doctor) forwardPolicies(flavours func(v6 bool) []fwd.Flavour, list func(bin string) (fwd.Chain, error)) {
	d.forwardPolicy("iptables", flavours(false), list)
	if d.node.Network.Bridge.Subnet6.IsValid() {
		d.forwardPolicy("ip6tables", flavours(true), list)
	}
}

// forwardPolicy reports the FORWARD policy of the flavours of cmd
// ("iptables" or "ip6tables").
func (d *doctor) forwardPolicy(cmd string, flavours []fwd.Flavour, list func(bin string) (fwd.Chain, error)) {
	const check = "forward-policy"
	cni := d.node.Network.CNIConfList != ""
	traffic := "its containers"
	if cmd == "ip6tables" {
		traffic = "its containers' IPv6 (subnet6)"
	}
	dropping := false
	for _, f := range flavours {
		drop := f.DropPolicy
		if f.Binary == "" {
			if drop || f.Name == "legacy" {
				d.add(check, StatusFail, "install iptables, which has "+cmd+" (Debian: apt-get install iptables)",
					"the %s %s filter table has a FORWARD chain but no %s command of that flavour is installed: bridge mode cannot let %s through it", f.Name, cmd, cmd, traffic)
			}
			continue
		}
		ch, err := list(f.Binary)
		if err != nil {
			d.add(check, StatusWarn, "run as root", "%v", err)
			continue
		}
		drop = drop || ch.Policy == "DROP"
		if !drop {
			d.add(check, StatusOK, "", "%s (%s) FORWARD policy %s", cmd, f.Name, ch.Policy)
			continue
		}
		dropping = true
		if cni {
			d.add(check, StatusWarn, "make sure the conflist "+d.node.Network.CNIConfList+" has the firewall plugin, which adds such accepts",
				"%s (%s) FORWARD policy DROP: bridge mode through CNI relies on the conflist's plugins to accept its containers' traffic", cmd, f.Name)
		} else {
			d.add(check, StatusOK, "", "%s (%s) FORWARD policy DROP: covered, bridge mode inserts accept rules for %s in it (%s)", cmd, f.Name, traffic, f.Binary)
		}
	}
	if !dropping {
		d.add(check, StatusOK, "", "no %s FORWARD chain drops by policy", cmd)
	}
}

// nftForwardDrops warns of nftables forward chains outside iptables'
// tables whose policy is drop: a packet bridge mode's FORWARD accepts let
// through is still dropped there.
func (d *doctor) nftForwardDrops() {
	c, err := nftables.New()
	if err != nil {
		return // the nftables check says why
	}
	chains, err := c.ListChains()
	if err != nil {
		return
	}
	for _, ch := range chains {
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		if ch.Table.Name == "filter" && ch.Name == "FORWARD" && (ch.Table.Family == nftables.TableFamilyIPv4 || ch.Table.Family == nftables.TableFamilyIPv6) {
			continue // iptables-nft's, checked above
		}
		d.add("forward-policy", StatusWarn,
			fmt.Sprintf("accept the bridge's traffic in that chain (iifname/oifname %q)", d.node.Network.Bridge.Name),
			"nftables chain %s %s %s drops forwarded packets by policy: bridge-mode containers reach nothing beyond the host unless it accepts them",
			familyName(ch.Table.Family), ch.Table.Name, ch.Name)
	}
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return strconv.Itoa(int(f))
}

// Net is a network the node already has: a route or an interface's
// address.
type Net struct {
	Prefix netip.Prefix
	What   string // "route via eth0", "address of bridge docker0"
}

// Overlapping returns the networks of nets that overlap subnet. Default
// routes (/0) are left out: every subnet lies in them.
func Overlapping(subnet netip.Prefix, nets []Net) []Net {
	var out []Net
	for _, n := range nets {
		if n.Prefix.Bits() == 0 || !n.Prefix.IsValid() || n.Prefix.Addr().Is4() != subnet.Addr().Is4() {
			continue
		}
		if n.Prefix.Masked().Overlaps(subnet.Masked()) {
			out = append(out, n)
		}
	}
	return out
}

// subnets checks that each bridge's subnet is the bridge's alone: no route
// of the host's main table and no address of another interface in it. The
// bridges are the node file's and those of the containers' records (a
// container may have had a configuration of its own).
func (d *doctor) subnets() {
	const check = "subnet"
	type bridgeNet struct {
		name   string
		subnet netip.Prefix
	}
	var bridges []bridgeNet
	seen := map[bridgeNet]bool{}
	if d.node.Network.CNIConfList == "" {
		b := d.node.Network.Bridge
		bridges = append(bridges, bridgeNet{b.Name, b.Subnet})
		seen[bridges[0]] = true
	} else {
		d.add(check, StatusOK, "", "the node's bridge mode runs through CNI: its subnet is the conflist's")
	}
	for _, c := range d.ctrs {
		var rec network.Record
		if err := bundle.New(c.Bundle).ReadNetwork(&rec); err == nil && rec.Bridge != "" && rec.Subnet.IsValid() {
			if bn := (bridgeNet{rec.Bridge, rec.Subnet.Masked()}); !seen[bn] {
				seen[bn] = true
				bridges = append(bridges, bn)
			}
		}
	}
	if len(bridges) == 0 {
		return
	}
	links, err := netlink.LinkList()
	if err != nil {
		d.add(check, StatusWarn, "run as root", "cannot list interfaces: %v", err)
		return
	}
	names := map[int]string{}
	type hostNet struct {
		Net
		dev string
	}
	var nets []hostNet
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		kind := "interface"
		if l.Type() == "bridge" {
			kind = "bridge"
		}
		for _, ad := range addrs {
			if p, ok := prefixOf(ad.IP, ad.Mask); ok {
				nets = append(nets, hostNet{Net{p.Masked(), fmt.Sprintf("address %s of %s %s", p, kind, a.Name)}, a.Name})
			}
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		d.add(check, StatusWarn, "run as root", "cannot list routes: %v", err)
		return
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := prefixOf(r.Dst.IP, r.Dst.Mask); ok {
			dev := names[r.LinkIndex]
			nets = append(nets, hostNet{Net{p, fmt.Sprintf("route %s dev %s", p, dev)}, dev})
		}
	}
	for _, b := range bridges {
		var others []Net
		for _, n := range nets {
			if n.dev != b.name {
				others = append(others, n.Net)
			}
		}
		over := Overlapping(b.subnet, others)
		if len(over) == 0 {
			d.add(check, StatusOK, "", "bridge %s's subnet %s overlaps no route or other interface", b.name, b.subnet)
			continue
		}
		var what []string
		for _, n := range over {
			what = append(what, n.What)
		}
		d.add(check, StatusFail, "set [network.bridge] subnet (in "+d.nodePath+" or the containers' runtime config) to a range this node does not use",
			"bridge %s's subnet %s overlaps %s: its containers cannot reach those addresses", b.name, b.subnet, strings.Join(what, ", "))
	}
}

func prefixOf(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ip)
	ones, bits := mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	if addr.Is4In6() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(addr.Unmap(), ones), true
}
