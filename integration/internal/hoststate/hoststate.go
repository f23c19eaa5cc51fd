// Package hoststate records what a network namespace holds that a
// container network can add to — links, addresses, routes, packet filter
// rules (nftables, and iptables and ip6tables through their nft and legacy
// flavours) and the IPv4 and IPv6 forwarding and unprivileged-port sysctls
// — so that a test can show that nothing appeared in it, and undo what
// did. IPv6 link-local addresses and
// their routes, which the kernel gives every link as it comes and goes,
// are left out.
package hoststate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Sysctls are the per-namespace settings CNI plugins and runtimes change.
var Sysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/forwarding",
	"net/ipv6/conf/all/forwarding", // hostnet never sets it (bridge.Forwarding6)
	"net/ipv4/ip_unprivileged_port_start",
	"net/ipv4/ping_group_range",
}

// State is one network namespace's contents, each line a fact.
type State struct {
	NetNS    string              // path; "" for the test's own
	Links    map[int]string      // index → "name kind"
	Addrs    []string            // "name addr/len"
	Routes   []string            // netlink's route description, every table
	Nft      []string            // `nft -s list ruleset` lines
	IPTables map[string][]string // iptables-save flavour → its lines, no counters
	Sysctl   map[string]string

	routes map[string]netlink.Route // by their line in Routes
	addrs  map[string]addr          // by their line in Addrs
}

type addr struct {
	link netlink.Link
	addr netlink.Addr
}

// iptablesSaves are the dumps compared; a missing one is skipped.
var iptablesSaves = []string{"iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save"}

// Take records the namespace at path ("" for the caller's own).
func Take(path string) (*State, error) {
	st := &State{NetNS: path, Links: map[int]string{}, IPTables: map[string][]string{}, Sysctl: map[string]string{},
		routes: map[string]netlink.Route{}, addrs: map[string]addr{}}
	h, err := handle(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		st.Links[l.Attrs().Index] = l.Attrs().Name + " " + l.Type()
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
				continue // the kernel's own, with every IPv6-capable link
			}
			line := l.Attrs().Name + " " + a.IPNet.String()
			st.Addrs = append(st.Addrs, line)
			st.addrs[line] = addr{l, a}
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.To4() == nil && (r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast()) {
			continue // the kernel's, for the links' IPv6 link-local addresses
		}
		line := fmt.Sprintf("%s table %d", r.String(), r.Table)
		st.Routes = append(st.Routes, line)
		st.routes[line] = r
	}
	slices.Sort(st.Addrs)
	slices.Sort(st.Routes)
	if out, err := inNetNS(path, "nft", "-s", "list", "ruleset"); err == nil {
		st.Nft = lines(out, nil)
	} else {
		return nil, err
	}
	for _, save := range iptablesSaves {
		if _, err := exec.LookPath(save); err != nil {
			continue
		}
		out, err := inNetNS(path, save)
		if err != nil {
			return nil, err
		}
		st.IPTables[save] = lines(out, func(l string) bool {
			return strings.HasPrefix(l, "#") // dates and versions
		})
	}
	for _, k := range Sysctls {
		v, err := readSysctl(path, k)
		if err != nil {
			return nil, err
		}
		st.Sysctl[k] = v
	}
	return st, nil
}

// Diff lists what after has that before had not, and settings that
// changed, one line each ("+ link eth0 veth", "- route ...").
func Diff(before, after *State) []string {
	var out []string
	for _, idx := range slices.Sorted(maps.Keys(after.Links)) {
		if before.Links[idx] != after.Links[idx] {
			out = append(out, "+ link "+after.Links[idx])
		}
	}
	for _, idx := range slices.Sorted(maps.Keys(before.Links)) {
		if _, ok := after.Links[idx]; !ok {
			out = append(out, "- link "+before.Links[idx])
		}
	}
	out = append(out, added("addr", before.Addrs, after.Addrs)...)
	out = append(out, added("addr", after.Addrs, before.Addrs, "-")...)
	out = append(out, added("route", before.Routes, after.Routes)...)
	out = append(out, added("route", after.Routes, before.Routes, "-")...)
	out = append(out, added("nft", before.Nft, after.Nft)...)
	out = append(out, added("nft", after.Nft, before.Nft, "-")...)
	for _, save := range slices.Sorted(maps.Keys(after.IPTables)) {
		out = append(out, added(save, before.IPTables[save], after.IPTables[save])...)
		out = append(out, added(save, after.IPTables[save], before.IPTables[save], "-")...)
	}
	for _, k := range Sysctls {
		if before.Sysctl[k] != after.Sysctl[k] {
			out = append(out, fmt.Sprintf("~ sysctl %s %q -> %q", k, before.Sysctl[k], after.Sysctl[k]))
		}
	}
	return out
}

// added lists the lines of b missing from a, as "<sign> what line".
func added(what string, a, b []string, sign ...string) []string {
	s := "+"
	if len(sign) > 0 {
		s = sign[0]
	}
	have := map[string]int{}
	for _, l := range a {
		have[l]++
	}
	var out []string
	for _, l := range b {
		if have[l] > 0 {
			have[l]--
			continue
		}
		out = append(out, s+" "+what+" "+l)
	}
	return out
}

// Changed lists what changed in before's namespace since before was taken,
// as Diff does.
func Changed(before *State) ([]string, error) {
	now, err := Take(before.NetNS)
	if err != nil {
		return nil, err
	}
	return Diff(before, now), nil
}

// Check is the end of a lane that must leave a namespace as it found it:
// an error listing what changed since before was taken, after restoring it.
func Check(before *State) error {
	diff, err := Changed(before)
	if err != nil || len(diff) == 0 {
		return err
	}
	what := "the host's network namespace"
	if before.NetNS != "" {
		what = "network namespace " + before.NetNS
	}
	err = fmt.Errorf("%s changed:\n%s", what, strings.Join(diff, "\n"))
	if rerr := Restore(before); rerr != nil {
		return fmt.Errorf("%w\nrestoring it: %w", err, rerr)
	}
	return err
}

// Restore undoes in the namespace of before what appeared since: links
// (a veth's peer goes with it), addresses and routes, iptables rules and
// chains, nftables tables, and sysctls. It is for cleaning up after a
// failing run; it does not touch what was there before.
func Restore(before *State) error {
	now, err := Take(before.NetNS)
	if err != nil {
		return err
	}
	h, err := handle(before.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for idx := range now.Links {
		if _, ok := before.Links[idx]; ok {
			continue
		}
		if l, err := h.LinkByIndex(idx); err == nil {
			if err := h.LinkDel(l); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("delete link %s: %w", now.Links[idx], err))
			}
		}
	}
	for _, save := range slices.Sorted(maps.Keys(now.IPTables)) {
		errs = append(errs, restoreIPTables(before.NetNS, save, before.IPTables[save], now.IPTables[save]))
	}
	// Tables iptables did not make (it only makes ip/ip6 filter, nat,
	// mangle, raw, security) and that were not there before.
	for _, l := range added("", before.Nft, now.Nft) {
		f := strings.Fields(l)
		if len(f) == 5 && f[1] == "table" && f[4] == "{" {
			if _, err := inNetNS(before.NetNS, "nft", "delete", "table", f[2], f[3]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, k := range Sysctls {
		if v, ok := before.Sysctl[k]; ok && now.Sysctl[k] != v {
			errs = append(errs, writeSysctl(before.NetNS, k, v))
		}
	}
	// Addresses and routes on links that were there before.
	if after, err := Take(before.NetNS); err == nil {
		for line, r := range after.routes {
			if _, ok := before.routes[line]; !ok {
				if err := h.RouteDel(&r); err != nil {
					errs = append(errs, fmt.Errorf("delete route %s: %w", line, err))
				}
			}
		}
		for line, a := range after.addrs {
			if _, ok := before.addrs[line]; !ok {
				if err := h.AddrDel(a.link, &a.addr); err != nil {
					errs = append(errs, fmt.Errorf("delete address %s: %w", line, err))
				}
			}
		}
	} else {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// restoreIPTables deletes the rules and chains of one iptables flavour
// that are in now but not in before: rules in old chains with -D, then new
// chains flushed and deleted.
func restoreIPTables(path, save string, before, now []string) error {
	bin := strings.TrimSuffix(save, "-save")
	var errs []error
	table := ""
	var newChains [][2]string
	beforeSet := map[string]bool{}
	tbl := ""
	for _, l := range before {
		if strings.HasPrefix(l, "*") {
			tbl = l[1:]
		}
		beforeSet[tbl+"\x00"+l] = true
	}
	for _, l := range now {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case beforeSet[table+"\x00"+l]:
		case strings.HasPrefix(l, ":"):
			newChains = append(newChains, [2]string{table, strings.Fields(l[1:])[0]})
		case strings.HasPrefix(l, "-A "):
			args, err := splitRule(l)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			args[0] = "-D"
			if _, err := inNetNS(path, bin, append([]string{"-w", "-t", table}, args...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, c := range newChains {
		if _, err := inNetNS(path, bin, "-w", "-t", c[0], "-F", c[1]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range newChains {
		if _, err := inNetNS(path, bin, "-w", "-t", c[0], "-X", c[1]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// splitRule splits an iptables-save rule line into arguments: words, and
// double-quoted strings with \" and \\ escapes.
func splitRule(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case c == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if have {
		args = append(args, cur.String())
	}
	return args, nil
}

func lines(out []byte, skip func(string) bool) []string {
	var ls []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimRight(l, "\n")
		if strings.TrimSpace(l) == "" || (skip != nil && skip(l)) {
			continue
		}
		// iptables-save's chain counters: ":CHAIN POLICY [p:b]".
		if strings.HasPrefix(l, ":") {
			if i := strings.LastIndex(l, " ["); i > 0 {
				l = l[:i]
			}
		}
		ls = append(ls, l)
	}
	return ls
}

func handle(path string) (*netlink.Handle, error) {
	if path == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// inNetNS runs a command in the network namespace at path.
func inNetNS(path, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if path != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=" + path, "--", name}, args...)...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// readSysctl reads /proc/sys in the namespace: a process's /proc/sys/net
// shows its own network namespace, so for another it goes through nsenter.
// A setting the kernel lacks (IPv6's, booted with ipv6.disable=1) is "".
func readSysctl(path, key string) (string, error) {
	if _, err := os.Stat("/proc/sys/" + key); errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if path == "" {
		b, err := os.ReadFile("/proc/sys/" + key)
		return strings.TrimSpace(string(b)), err
	}
	out, err := inNetNS(path, "cat", "/proc/sys/"+key)
	return strings.TrimSpace(string(out)), err
}

func writeSysctl(path, key, value string) error {
	if path == "" {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	}
	_, err := inNetNS(path, "sh", "-c", `printf '%s' "$1" > "/proc/sys/$2"`, "sh", value, key)
	return err
}
