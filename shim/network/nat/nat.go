// Package nat gives bridge-mode containers outbound masquerade and
// published ports, with nftables over netlink (no iptables or nft binary).
//
// Everything lives in one table of the ip family that no one else writes,
// by default "ip hostnet", with three NAT base chains and a filter one:
//
//	prerouting  (nat, prerouting, dstnat):  DNAT of published ports
//	output      (nat, output, dstnat):      the same for the host's own connections
//	postrouting (nat, postrouting, srcnat): masquerade
//	guard       (filter, prerouting, filter): loopback traffic from a bridge
//
// Every rule but the guard's belongs to one container: its comment starts
// with the container's key, so removing a container deletes exactly its
// rules. The guard's rules belong to a bridge ("bridge:<name>") and stay as
// long as the table. The table itself goes when the last container's rule
// does, so a host without bridge-mode containers has no hostnet ruleset.
// Adding and removing run under a host-wide flock: between listing the
// rules and deleting an empty table, no other shim may add one.
package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
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

// Endpoint is one container on a bridge.
type Endpoint struct {
	Key    string // containerd namespace/id; no spaces
	Bridge string
	Subnet netip.Prefix
	Addr   netip.Addr
	Ports  []spec.PortMapping
}

// Add installs the container's rules, replacing any it already has so a
// retried create is harmless. A host port another container publishes is
// an AlreadyExists error naming both.
func (t Table) Add(ep Endpoint) error {
	if err := CheckPorts(ep.Ports); err != nil {
		return err
	}
	return t.locked(func(c *nftables.Conn) error {
		tbl, chains := t.objects()
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
		c.AddTable(tbl)
		for _, ch := range chains {
			c.AddChain(ch)
		}
		if !guarded {
			for _, r := range guardRules(ep.Bridge, chains[3]) {
				c.AddRule(r)
			}
		}
		for _, r := range rulesFor(ep, chains) {
			c.AddRule(r)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("failed to add nftables rules of %s to table ip %s: %w", ep.Key, t.Name, err)
		}
		return nil
	})
}

// Remove deletes the container's rules, and the table when no rule is
// left. Removing a container without rules is not an error.
func (t Table) Remove(key string) error {
	return t.locked(func(c *nftables.Conn) error {
		tbl, chains := t.objects()
		existing, err := listRules(c, tbl, chains)
		if err != nil {
			return err
		}
		var mine []*nftables.Rule
		others := 0 // other containers' rules
		for _, r := range existing {
			switch owner, _ := parseComment(r); {
			case owner == key:
				mine = append(mine, r)
			case !isGuardOwner(owner):
				others++
			}
		}
		switch {
		case len(existing) == 0 && !tableExists(c, t.Name):
			return nil
		case others == 0:
			c.DelTable(tbl)
		default:
			for _, r := range mine {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("failed to delete nftables rules of %s: %w", key, err)
				}
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("failed to delete nftables rules of %s from table ip %s: %w", key, t.Name, err)
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
	tbl, chains := t.objects()
	// Every mapping has an output rule; loopback ones have no prerouting
	// rule.
	rules, err := listRules(c, tbl, chains[1:2])
	if err != nil {
		return nil, err
	}
	var out []Publication
	for _, r := range rules {
		owner, role := parseComment(r)
		if m, ok := publishedMapping(role); ok {
			out = append(out, Publication{Owner: owner, Mapping: m})
		}
	}
	return out, nil
}

// Keys returns the owner of every rule in the table, for tests and
// diagnostics.
func (t Table) Keys() (map[string]int, error) {
	out := map[string]int{}
	err := t.locked(func(c *nftables.Conn) error {
		tbl, chains := t.objects()
		rules, err := listRules(c, tbl, chains)
		for _, r := range rules {
			owner, _ := parseComment(r)
			out[owner]++
		}
		return err
	})
	return out, err
}

const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainGuard       = "guard"
)

func (t Table) objects() (*nftables.Table, []*nftables.Chain) {
	tbl := &nftables.Table{Name: t.Name, Family: nftables.TableFamilyIPv4}
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: tbl, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio}
	}
	return tbl, []*nftables.Chain{
		chain(chainPrerouting, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		chain(chainOutput, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		chain(chainPostrouting, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		// After conntrack and DNAT: replies to the host's connections to
		// a published port on 127.0.0.1 carry their DNAT status.
		{Name: chainGuard, Table: tbl, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter},
	}
}

func tableExists(c *nftables.Conn, name string) bool {
	_, err := c.ListTableOfFamily(name, nftables.TableFamilyIPv4)
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
			return nil, fmt.Errorf("failed to list nftables chain ip %s %s: %w", tbl.Name, ch.Name, err)
		}
		out = append(out, rules...)
	}
	return out, nil
}

// CheckPorts refuses what bridge mode cannot publish, before anything is
// changed.
func CheckPorts(ports []spec.PortMapping) error {
	for i, p := range ports {
		if p.HostIP.IsValid() && !p.HostIP.Is4() {
			return fmt.Errorf("cannot publish port %s: bridge mode publishes on IPv4 host addresses only: %w", p, errdefs.ErrInvalidArgument)
		}
		for _, q := range ports[:i] {
			if overlaps(p, q) {
				return fmt.Errorf("port mappings %s and %s publish the same host port: %w", q, p, errdefs.ErrInvalidArgument)
			}
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
// protocol and port on the same address, or on any address.
func overlaps(p, q spec.PortMapping) bool {
	if p.Protocol != q.Protocol || p.HostPort != q.HostPort {
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
