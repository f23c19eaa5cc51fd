// Package nat gives bridge-mode containers outbound masquerade and
// published ports, with nftables over netlink (no iptables or nft binary).
//
// Everything lives in tables that no one else writes, by default "ip
// hostnet" for IPv4 and "ip6 hostnet" for IPv6, each with three NAT base
// chains, and the IPv4 one a filter chain:
//
//	prerouting  (nat, prerouting, dstnat):  DNAT of published ports
//	output      (nat, output, dstnat):      the same for the host's own connections
//	postrouting (nat, postrouting, srcnat): masquerade
//	guard       (filter, prerouting, filter): loopback traffic from a bridge (ip only)
//
// Every rule but the guard's belongs to one container. Add returns what it
// added (family, chain and handle of each rule), which the caller records
// in the container's bundle; Remove deletes exactly those. Each rule's
// comment also starts with the container's key, for operators, for `hostnet
// doctor`'s scan for leftovers and for Remove to check that a recorded
// handle still holds the container's rule (handles start again in a table
// made anew), or to find the rules of a record that lists none (one of an
// older shim, or one whose shim died between adding the rules and
// recording them). The guard's rules belong to a bridge
// ("bridge:<name>") and stay as long as the table. A table goes when its
// last container's rule does, so a host without bridge-mode containers has
// no hostnet ruleset. Adding and removing run under a host-wide flock:
// between listing the rules and deleting an empty table, no other shim may
// add one.
package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/network/internal/lockfile"
	"github.com/hostnet-dev/hostnet/spec"
)

// DefaultTable and DefaultLockDir are what shims use.
const (
	DefaultTable   = "hostnet"
	DefaultLockDir = "/run/hostnet"
)

// Table is the nftables table holding every container's rules.
type Table struct {
	Name string `json:"name"`
	// LockDir holds the flock serializing every change to the table.
	LockDir string `json:"lockDir"`
}

// Endpoint is one container on a bridge, with an address of one family
// or of both.
type Endpoint struct {
	Key    string // containerd namespace/id; no spaces
	Bridge string
	// Subnet and Addr are the IPv4 ones, zero on an IPv6-only bridge.
	Subnet netip.Prefix
	Addr   netip.Addr
	// Subnet6 and Addr6 are the IPv6 ones, zero on an IPv4-only bridge.
	Subnet6 netip.Prefix
	Addr6   netip.Addr
	// Masquerade6 masquerades (NAT66) what the container sends beyond the
	// host over IPv6; without it the container's own address is seen.
	// IPv4 is always masqueraded.
	Masquerade6 bool
	Ports       []spec.PortMapping
}

// Rule identifies a rule Add made: its table's family, its chain and its
// handle. Handles are unique in a table while it exists.
type Rule struct {
	Family string `json:"family"` // "ip" or "ip6", as nft names them
	Chain  string `json:"chain"`
	Handle uint64 `json:"handle"`
}

// Add installs the container's rules, replacing any it already has so a
// retried create is harmless, and returns them. A host port another
// container publishes is an AlreadyExists error naming both.
func (t Table) Add(ep Endpoint) ([]Rule, error) {
	if err := CheckPorts(ep.Ports); err != nil {
		return nil, err
	}
	if err := CheckPortFamilies(ep.Ports, ep.Addr.IsValid(), ep.Addr6.IsValid()); err != nil {
		return nil, err
	}
	var added []Rule
	err := t.locked(func(c *nftables.Conn) error {
		for _, fam := range families {
			tbl, chains := t.objects(fam)
			existing, err := listRules(c, tbl, chains)
			if err != nil {
				return err
			}
			guarded := false
			for _, r := range existing {
				owner, role := parseComment(r)
				if owner == ep.Key {
					if err := c.DelRule(r); err != nil {
						return fmt.Errorf("failed to replace nftables rules of %s: %w", ep.Key, err)
					}
					continue
				}
				guarded = guarded || owner == guardOwner(ep.Bridge)
				if err := conflict(ep, owner, role); err != nil {
					return err
				}
			}
			rules := rulesFor(fam, ep, chains)
			if len(rules) == 0 {
				continue
			}
			c.AddTable(tbl)
			for _, ch := range chains {
				c.AddChain(ch)
			}
			if fam == nftables.TableFamilyIPv4 && !guarded {
				for _, r := range guardRules(ep.Bridge, chains[3]) {
					c.AddRule(r)
				}
			}
			for _, r := range rules {
				c.AddRule(r)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("failed to add nftables rules of %s to tables %s: %w", ep.Key, t.Name, err)
		}
		// The kernel gave the rules their handles; under the lock, the
		// container's are exactly the ones with its key.
		return t.eachRule(c, func(fam nftables.TableFamily, r *nftables.Rule) {
			if owner, _ := parseComment(r); owner == ep.Key {
				added = append(added, Rule{Family: familyName(fam), Chain: r.Chain.Name, Handle: r.Handle})
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// Remove deletes the rules of container key that owned lists (Add's
// result), and each table no other container has a rule in. A recorded
// handle is deleted only while its rule still carries the container's
// key: a table made anew reuses handles. An empty owned means every rule
// with the container's key (a record without them). Removing what is
// gone already is not an error.
func (t Table) Remove(key string, owned []Rule) error {
	return t.locked(func(c *nftables.Conn) error {
		for _, fam := range families {
			tbl, chains := t.objects(fam)
			existing, err := listRules(c, tbl, chains)
			if err != nil {
				return err
			}
			var mine []*nftables.Rule
			others := 0 // other containers' rules
			for _, r := range existing {
				owner, _ := parseComment(r)
				switch {
				case owner == key && (len(owned) == 0 || slices.Contains(owned, Rule{Family: familyName(fam), Chain: r.Chain.Name, Handle: r.Handle})):
					mine = append(mine, r)
				case r.Chain.Name != chainGuard:
					others++
				}
			}
			switch {
			case len(existing) == 0 && !tableExists(c, fam, t.Name):
			case others == 0:
				c.DelTable(tbl)
			default:
				for _, r := range mine {
					if err := c.DelRule(r); err != nil {
						return fmt.Errorf("failed to delete nftables rules of %s: %w", key, err)
					}
				}
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("failed to delete nftables rules of %s from tables %s: %w", key, t.Name, err)
		}
		return nil
	})
}

// Publication is a host port a container publishes.
type Publication struct {
	Owner   string // the container's key
	Mapping spec.PortMapping
}

// Published lists the host ports the table's containers publish, for
// host-mode containers that would bind one of them: the DNAT rule would
// take their clients without a word.
//
// It only reads one chain, which needs no lock: a concurrent change is
// either in the listing or not.
func (t Table) Published() ([]Publication, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("failed to open nftables netlink connection: %w", err)
	}
	var out []Publication
	for _, fam := range families {
		tbl, chains := t.objects(fam)
		// Every mapping has an output rule; loopback ones have no
		// prerouting rule.
		rules, err := listRules(c, tbl, chains[1:2])
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			owner, role := parseComment(r)
			m, ok := publishedMapping(role)
			// A mapping without a host IP has a rule in each family.
			if p := (Publication{Owner: owner, Mapping: m}); ok && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// Keys returns the owner of every rule in the table, for tests and
// diagnostics.
func (t Table) Keys() (map[string]int, error) {
	out := map[string]int{}
	err := t.locked(func(c *nftables.Conn) error {
		return t.eachRule(c, func(_ nftables.TableFamily, r *nftables.Rule) {
			owner, _ := parseComment(r)
			out[owner]++
		})
	})
	return out, err
}

// eachRule calls fn with every rule in the table's chains, of both
// families.
func (t Table) eachRule(c *nftables.Conn, fn func(nftables.TableFamily, *nftables.Rule)) error {
	for _, fam := range families {
		tbl, chains := t.objects(fam)
		rules, err := listRules(c, tbl, chains)
		if err != nil {
			return err
		}
		for _, r := range rules {
			fn(fam, r)
		}
	}
	return nil
}

const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainGuard       = "guard"
)

// families are the tables' families, IPv4's first.
var families = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

func familyName(fam nftables.TableFamily) string {
	if fam == nftables.TableFamilyIPv6 {
		return "ip6"
	}
	return "ip"
}

// objects are the table of a family and its chains: prerouting, output,
// postrouting, and for IPv4 guard.
func (t Table) objects(fam nftables.TableFamily) (*nftables.Table, []*nftables.Chain) {
	tbl := &nftables.Table{Name: t.Name, Family: fam}
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: tbl, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio}
	}
	chains := []*nftables.Chain{
		chain(chainPrerouting, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		chain(chainOutput, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		chain(chainPostrouting, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
	}
	if fam == nftables.TableFamilyIPv4 {
		// After conntrack and DNAT: replies to the host's connections to
		// a published port on 127.0.0.1 carry their DNAT status. IPv6
		// needs none: see guardRules.
		chains = append(chains, &nftables.Chain{Name: chainGuard, Table: tbl, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter})
	}
	return tbl, chains
}

func tableExists(c *nftables.Conn, fam nftables.TableFamily, name string) bool {
	_, err := c.ListTableOfFamily(name, fam)
	return err == nil
}

// listRules returns every rule of the table's chains; none if the table or
// a chain does not exist.
func listRules(c *nftables.Conn, tbl *nftables.Table, chains []*nftables.Chain) ([]*nftables.Rule, error) {
	var out []*nftables.Rule
	for _, ch := range chains {
		rules, err := c.GetRules(tbl, ch)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list nftables chain %s %s %s: %w", familyName(tbl.Family), tbl.Name, ch.Name, err)
		}
		out = append(out, rules...)
	}
	return out, nil
}

// CheckPorts refuses what bridge mode cannot publish, before anything is
// changed: a host port twice, or a port on ::1. The kernel cannot forward
// the host's connections to ::1 into a container: IPv6 has no
// route_localnet, and packets from ::1 never leave lo (RFC 4291 2.5.3).
// Docker without its userland proxy cannot either; publish on 127.0.0.1,
// or on a host address.
func CheckPorts(ports []spec.PortMapping) error {
	for i, p := range ports {
		if p.HostIP.Is6() && p.HostIP.IsLoopback() {
			return fmt.Errorf("cannot publish port %s: connections to ::1 cannot be forwarded into a container (IPv6 has no route_localnet); "+
				"publish on 127.0.0.1 or on an address of the host: %w", p, errdefs.ErrInvalidArgument)
		}
		for _, q := range ports[:i] {
			if overlaps(p, q) {
				return fmt.Errorf("port mappings %s and %s publish the same host port: %w", q, p, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// CheckPortFamilies refuses a mapping whose host IP is of a family the
// container has no address of. A mapping without a host IP is published
// in each family the container has, as Docker's -p publishes on 0.0.0.0
// and [::]; 0.0.0.0 and [::] name one family each.
func CheckPortFamilies(ports []spec.PortMapping, has4, has6 bool) error {
	for _, p := range ports {
		switch {
		case p.HostIP.Is4() && !has4:
			return fmt.Errorf("cannot publish port %s: the container has no IPv4 address (the bridge has no IPv4 subnet): %w", p, errdefs.ErrInvalidArgument)
		case p.HostIP.Is6() && !has6:
			return fmt.Errorf("cannot publish port %s: the container has no IPv6 address (the bridge has no IPv6 subnet): %w", p, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// conflict reports whether a rule owned by another container publishes a
// host port the endpoint wants.
func conflict(ep Endpoint, owner, role string) error {
	theirs, ok := publishedMapping(role)
	if !ok {
		return nil
	}
	for _, p := range ep.Ports {
		if overlaps(p, theirs) {
			return fmt.Errorf("host port %d/%s is already published by container %s (%s): %w",
				p.HostPort, p.Protocol, owner, theirs, errdefs.ErrAlreadyExists)
		}
	}
	return nil
}

// publishedMapping parses the role of a publish rule.
func publishedMapping(role string) (spec.PortMapping, bool) {
	published, ok := strings.CutPrefix(role, rolePublish+" ")
	if !ok {
		return spec.PortMapping{}, false
	}
	m, err := spec.ParsePorts(published)
	if err != nil || len(m) != 1 {
		return spec.PortMapping{}, false // not a comment we wrote
	}
	return m[0], true
}

// overlaps reports whether two mappings claim one host port: the same
// protocol and port on the same address, or on any address of the same
// family (0.0.0.0 and [::] are one each; no host IP is both).
func overlaps(p, q spec.PortMapping) bool {
	if p.Protocol != q.Protocol || p.HostPort != q.HostPort {
		return false
	}
	if p.HostIP.IsValid() && q.HostIP.IsValid() && p.HostIP.Is4() != q.HostIP.Is4() {
		return false
	}
	wildcard := func(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() }
	return wildcard(p.HostIP) || wildcard(q.HostIP) || p.HostIP == q.HostIP
}

// locked runs fn with a fresh nftables connection under the table's flock.
func (t Table) locked(fn func(*nftables.Conn) error) error {
	f, err := lockfile.Lock(filepath.Join(t.LockDir, "nft-"+t.Name+".lock"))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer f.Close() // releases the flock
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("failed to open nftables netlink connection: %w", err)
	}
	defer c.CloseLasting()
	return fn(c)
}
