// Package fwd lets a bridge-mode container's forwarded traffic through the
// iptables FORWARD chain of hosts that filter forwarding (Docker sets its
// policy to DROP).
//
// hostnet's own nftables table cannot do it: nftables runs every base chain
// of a hook, and a packet an earlier chain accepted is still dropped by
// another table's. So, as CNI's firewall plugin and Docker do, the accept
// rules go into the iptables filter table's FORWARD chain itself, through
// the iptables binary of that table's flavour (nft or legacy), and only
// where such a chain exists: a host without one forwards already. Each
// container gets two rules, scoped to its address on its bridge:
//
//	-I FORWARD -s ADDR/32 -i BRIDGE -j ACCEPT
//	-I FORWARD -d ADDR/32 -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT
//
// what it sends, and the replies and published-port connections (DNATed
// by hostnet's table) it receives; nothing else is opened. They carry the
// comment "hostnet <key>" and are removed with the container. An IPv6
// address gets the same rules (ADDR/128) in ip6tables' FORWARD chain.
package fwd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/google/nftables"

	"github.com/hostnet-dev/hostnet/shim/network/reaped"
)

// Rules are one container's accept rules.
type Rules struct {
	Key    string `json:"key"`
	Bridge string `json:"bridge"`
	// Addr is IPv4 (iptables) or IPv6 (ip6tables).
	Addr netip.Addr `json:"addr"`
	// Binaries are the iptables commands the rules were inserted with
	// (iptables-nft, iptables-legacy, or their ip6tables twins), for
	// their removal.
	Binaries []string `json:"binaries,omitempty"`
}

// Add inserts the rules into each iptables filter FORWARD chain the host
// has and records where. A host with none gets nothing.
func (r *Rules) Add() error {
	for _, bin := range forwardChains(r.Addr.Is6()) {
		for _, spec := range r.specs() {
			if err := iptables(bin, append([]string{"-I", "FORWARD", "1"}, spec...)...); err != nil {
				return err
			}
			if !contains(r.Binaries, bin) {
				r.Binaries = append(r.Binaries, bin)
			}
		}
	}
	return nil
}

// Remove deletes the rules Add inserted; rules already gone are not an
// error.
func (r *Rules) Remove() error {
	var errs []error
	for _, bin := range r.Binaries {
		for _, spec := range r.specs() {
			for {
				err := iptables(bin, append([]string{"-D", "FORWARD"}, spec...)...)
				if err == nil {
					continue // a retried Add may have inserted it twice
				}
				if !errors.Is(err, errNoRule) {
					errs = append(errs, err)
				}
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Rules) specs() [][]string {
	addr := netip.PrefixFrom(r.Addr, r.Addr.BitLen()).String()
	comment := []string{"-m", "comment", "--comment", commentPrefix + r.Key}
	return [][]string{
		append([]string{"-s", addr, "-i", r.Bridge}, append(comment, "-j", "ACCEPT")...),
		append([]string{"-d", addr, "-o", r.Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT"}, append(comment, "-j", "ACCEPT")...),
	}
}

// forwardChains are the iptables (ip6tables with v6) commands whose filter
// table has a FORWARD chain here (Flavours with a binary).
func forwardChains(v6 bool) []string {
	var out []string
	for _, f := range Flavours(v6) {
		if f.Binary != "" {
			out = append(out, f.Binary)
		}
	}
	return out
}

// Flavour is an iptables flavour whose filter table has a FORWARD chain
// here: iptables-nft's is an nftables chain "ip filter FORWARD",
// iptables-legacy's shows in /proc/net/ip_tables_names; ip6tables' are
// "ip6 filter FORWARD" and ip6_tables_names.
type Flavour struct {
	Name string // "nf_tables" or "legacy", as `iptables -V` says
	// Binary is its iptables (ip6tables) command, "" when none is
	// installed: Add then cannot let containers through this chain.
	Binary string
	// DropPolicy is set when the chain's policy is DROP, as far as
	// nftables tells (iptables-nft's chain); see Policy for the other.
	DropPolicy bool
}

// Flavours lists the iptables flavours with a filter FORWARD chain, of
// ip6tables with v6.
func Flavours(v6 bool) []Flavour {
	family, cmd, names := nftables.TableFamilyIPv4, "iptables", "/proc/net/ip_tables_names"
	if v6 {
		family, cmd, names = nftables.TableFamilyIPv6, "ip6tables", "/proc/net/ip6_tables_names"
	}
	var out []Flavour
	if c, err := nftables.New(); err == nil {
		if chains, err := c.ListChainsOfTableFamily(family); err == nil {
			for _, ch := range chains {
				if ch.Table.Name == "filter" && ch.Name == "FORWARD" {
					drop := ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop
					out = append(out, Flavour{Name: "nf_tables", Binary: lookBinary(cmd, "nft", "nf_tables"), DropPolicy: drop})
					break
				}
			}
		}
	}
	if data, err := os.ReadFile(names); err == nil && contains(strings.Fields(string(data)), "filter") {
		out = append(out, Flavour{Name: "legacy", Binary: lookBinary(cmd, "legacy", "legacy")})
	}
	return out
}

// lookBinary finds the command (iptables or ip6tables) of a flavour: its
// own name (iptables-nft), else the plain command if that is the flavour
// (`iptables -V` says which).
func lookBinary(cmd, suffix, flavour string) string {
	if p, err := exec.LookPath(cmd + "-" + suffix); err == nil {
		return p
	}
	p, err := exec.LookPath(cmd)
	if err != nil {
		return ""
	}
	var out bytes.Buffer
	c := exec.Command(p, "-V")
	c.Stdout = &out
	if err := reaped.Run(c); err != nil || !strings.Contains(out.String(), "("+flavour+")") {
		return ""
	}
	return p
}

var errNoRule = errors.New("no such rule")

func iptables(bin string, args ...string) error {
	args = append([]string{"-w", "-t", "filter"}, args...)
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := reaped.Run(cmd); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "does a matching rule exist") || strings.Contains(msg, "No chain/target/match") {
			return fmt.Errorf("%s %s: %s: %w", bin, strings.Join(args, " "), msg, errNoRule)
		}
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, msg)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
