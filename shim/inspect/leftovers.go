package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/network/fwd"
	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/shim/network/nat"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
)

const checkLeftover = "leftover"

// KeyBundle is the bundle a bridge-mode key of a container of the
// containerd whose state directory is state must come from, and whether it
// is that containerd's at all: a key names namespace/id and the hash of the
// bundle's path (network.BridgeKey), which differs for the same
// namespace/id of another containerd.
func KeyBundle(state, key string) (string, bool) {
	ns, rest, ok := strings.Cut(key, "/")
	i := strings.LastIndexByte(rest, '@')
	if !ok || i < 0 {
		return "", false
	}
	id := rest[:i]
	for _, part := range []string{ns, id} {
		if part == "" || part == "." || part == ".." || strings.ContainsRune(part, '/') {
			return "", false
		}
	}
	path := filepath.Join(state, taskDir, ns, id)
	return path, network.BridgeKey(path, ns, id) == key
}

// leftovers reports what stale containers left on the host (their netns
// pin, lease, nftables and FORWARD rules, veth) and what belongs to
// containers of this containerd whose bundles are gone, and with Fix
// removes it. Staleness is Containers' verdict (the runtime's state: init
// pid and start time; and no shim answering), checked again right before
// anything is removed; a running container's records are never touched.
func (d *doctor) leftovers() {
	ctrs, err := d.ctrs, d.ctrsErr
	if err != nil {
		d.add(checkLeftover, StatusFail, "run as root; check --state", "cannot list containers: %v", err)
		return
	}
	ipamDirs := map[string]bool{d.node.Network.Bridge.StateDir: true}
	tables := map[string]nat.Table{nat.DefaultTable: {Name: nat.DefaultTable, LockDir: nat.DefaultLockDir}}
	bins := map[string]bool{}
	for _, f := range append(fwd.Flavours(false), fwd.Flavours(true)...) {
		if f.Binary != "" {
			bins[f.Binary] = true
		}
	}
	found := false
	for _, c := range ctrs {
		var rec network.Record
		if err := bundle.New(c.Bundle).ReadNetwork(&rec); err == nil {
			ipamDirs[rec.IPAMDir] = true
			if rec.NAT.Name != "" {
				tables[rec.NAT.Name] = rec.NAT
			}
			for _, b := range rec.Forward.Binaries {
				bins[b] = true
			}
		}
		if c.Status == StatusStale {
			d.staleContainer(c)
			found = true
		}
	}
	if d.orphans(ipamDirs, tables, bins) {
		found = true
	}
	if !found {
		d.add(checkLeftover, StatusOK, "", "no stale container left a netns pin, lease, nftables or FORWARD rule behind")
	}
}

// staleItems lists what of a stale container's network is still on the
// host.
func staleItems(b bundle.Bundle) []string {
	var items []string
	if isNsfsMount(b.NetNS()) {
		items = append(items, "netns pin "+b.NetNS())
	}
	var rec network.Record
	if err := b.ReadNetwork(&rec); err == nil {
		for _, net := range []struct {
			subnet  netip.Prefix
			gateway netip.Addr
		}{{rec.Subnet, rec.Gateway}, {rec.Subnet6, rec.Gateway6}} {
			if rec.Key == "" || rec.IPAMDir == "" || !net.subnet.IsValid() {
				continue
			}
			if a, err := ipam.New(rec.IPAMDir, net.subnet, net.gateway); err == nil {
				if leases, err := a.Leases(); err == nil {
					for addr, owner := range leases {
						if owner == rec.Key {
							items = append(items, fmt.Sprintf("IPAM lease %s in %s", addr, rec.IPAMDir))
						}
					}
				}
			}
		}
		if rec.NAT.Name != "" {
			if keys, err := rec.NAT.Keys(); err == nil && keys[rec.Key] > 0 {
				items = append(items, fmt.Sprintf("%s in table %s", count(keys[rec.Key], "nftables rule"), rec.NAT.Name))
			}
		}
		for _, bin := range rec.Forward.Binaries {
			if ch, err := fwd.List(bin); err == nil {
				for _, r := range ch.Rules {
					if r.Key == rec.Key {
						items = append(items, fmt.Sprintf("iptables FORWARD rules for %s (%s)", r.Addr, bin))
					}
				}
			}
		}
		if rec.HostIfName != "" {
			if _, err := netlink.LinkByName(rec.HostIfName); err == nil {
				items = append(items, "veth "+rec.HostIfName)
			}
		}
		if len(items) == 0 {
			items = append(items, "its network record (bridge key "+rec.Key+")")
		}
	}
	var cni json.RawMessage
	if err := b.ReadCNI(&cni); err == nil {
		items = append(items, "a CNI attachment (DEL not run)")
	}
	return items
}

// staleContainer reports (and with Fix removes) what stale container c
// left.
func (d *doctor) staleContainer(c *Container) {
	b := bundle.New(c.Bundle)
	items := staleItems(b)
	if len(items) == 0 {
		d.add(checkLeftover, StatusWarn, fmt.Sprintf("`ctr -n %s task delete %s`, or containerd's restart, removes the record", c.Namespace, c.ID),
			"%s is stale (%s); nothing of its network is left", c.Name(), strings.Join(c.Notes, "; "))
		return
	}
	if pids := netnsUsers(d.o.Proc, b.NetNS()); len(pids) > 0 {
		// Its records say stale, but something lives in its network:
		// not a leftover, whatever the records say.
		d.add(checkLeftover, StatusWarn, "find out what runs as pid "+strconv.Itoa(pids[0])+"; nothing was removed",
			"%s looks stale (%s), but pids %v run in its network namespace %s: left alone", c.Name(), strings.Join(c.Notes, "; "), pids, b.NetNS())
		return
	}
	what := fmt.Sprintf("stale container %s (%s) left %s", c.Name(), strings.Join(c.Notes, "; "), strings.Join(items, ", "))
	if !d.o.Fix {
		d.add(checkLeftover, StatusFail, "hostnet doctor --fix removes them (or `ctr -n "+c.Namespace+" task delete "+c.ID+"` with containerd running)", "%s", what)
		return
	}
	// Right before removing: is it still stale, and its network empty?
	if !d.stillStale(c) || len(netnsUsers(d.o.Proc, b.NetNS())) > 0 {
		d.add(checkLeftover, StatusWarn, "run hostnet doctor again", "%s is no longer stale: left alone", c.Name())
		return
	}
	err := network.Teardown(context.Background(), b)
	if err == nil && isNsfsMount(b.NetNS()) {
		err = netns.Remove(b.NetNS()) // a pin without a record
	}
	if left := staleItems(b); err != nil || len(left) > 0 {
		d.add(checkLeftover, StatusFail, "see the error; `ctr -n "+c.Namespace+" task delete "+c.ID+"` with containerd running also removes them",
			"%s: removing failed: %v; still there: %s", what, err, strings.Join(left, ", "))
		return
	}
	d.add(checkLeftover, StatusFixed, "", "removed what stale container %s left: %s", c.Name(), strings.Join(items, ", "))
}

// stillStale reads c's records again and says whether it is still stale.
func (d *doctor) stillStale(c *Container) bool {
	ctrs, err := Containers(d.o.Options)
	if err != nil {
		return false
	}
	for _, now := range ctrs {
		if now.Namespace == c.Namespace && now.ID == c.ID {
			return now.Status == StatusStale
		}
	}
	return false
}

// orphan is something owned by a key whose container is gone.
type orphan struct {
	key    string
	what   string
	remove func() error
}

// orphans reports (and with Fix removes) leases, nftables rules and
// FORWARD rules owned by keys of this containerd whose bundle is gone: a
// bundle holds the network record from before the first of them is made
// until after the last is removed, so without a bundle nothing will
// remove them. Keys of other containerds are left alone.
func (d *doctor) orphans(ipamDirs map[string]bool, tables map[string]nat.Table, bins map[string]bool) bool {
	var list []orphan
	foreign := map[string]bool{}
	// gone says whether key is this containerd's and its bundle is gone.
	gone := func(key string) bool {
		path, ours := KeyBundle(d.o.State, key)
		if !ours {
			if strings.Contains(key, "/") {
				foreign[key] = true
			}
			return false
		}
		_, err := os.Lstat(path)
		return errors.Is(err, os.ErrNotExist) // else its container decides (above)
	}
	for _, dir := range sortedKeys(ipamDirs) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			subnet, err := netip.ParsePrefix(strings.Replace(strings.TrimSuffix(filepath.Base(f), ".json"), "-", "/", 1))
			if err != nil {
				continue
			}
			a, err := ipam.New(dir, subnet, subnet.Addr().Next())
			if err != nil {
				continue
			}
			leases, err := a.Leases()
			if err != nil {
				d.add(checkLeftover, StatusWarn, "run as root", "cannot read leases in %s: %v", dir, err)
				continue
			}
			for addr, key := range leases {
				if gone(key) {
					list = append(list, orphan{key, fmt.Sprintf("IPAM lease %s in %s", addr, dir), func() error { return a.Release(key) }})
				}
			}
		}
	}
	for _, name := range sortedKeys(tables) {
		t := tables[name]
		keys, err := t.Keys()
		if err != nil {
			continue // the nftables check says why
		}
		for key, n := range keys {
			if gone(key) {
				list = append(list, orphan{key, fmt.Sprintf("%s in table %s", count(n, "nftables rule"), name), func() error { return t.Remove(key, nil) }})
			}
		}
	}
	for _, bin := range sortedKeys(bins) {
		ch, err := fwd.List(bin)
		if err != nil {
			continue
		}
		for _, r := range ch.Rules {
			if gone(r.Key) {
				list = append(list, orphan{r.Key, fmt.Sprintf("iptables FORWARD rules for %s on %s (%s)", r.Addr, r.Bridge, bin), r.Remove})
			}
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].key < list[j].key })
	for _, o := range list {
		what := fmt.Sprintf("%s of %s, whose bundle is gone", o.what, o.key)
		if !d.o.Fix {
			d.add(checkLeftover, StatusFail, "hostnet doctor --fix removes it", "%s", what)
			continue
		}
		if !gone(o.key) { // right before removing
			d.add(checkLeftover, StatusWarn, "run hostnet doctor again", "%s: its bundle is back, left alone", what)
			continue
		}
		if err := o.remove(); err != nil {
			d.add(checkLeftover, StatusFail, "see the error", "%s: removing failed: %v", what, err)
			continue
		}
		d.add(checkLeftover, StatusFixed, "", "removed %s", what)
	}
	if len(foreign) > 0 {
		d.add(checkLeftover, StatusOK, "", "%s of containers of other containerds (another state directory) left alone", count(len(foreign), "key"))
	}
	return len(list) > 0
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// count is n things, in the plural unless n is 1.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// netnsUsers are the processes in the network namespace pinned at pin,
// none if nothing is pinned there.
func netnsUsers(proc, pin string) []int {
	var ns unix.Stat_t
	if !isNsfsMount(pin) || unix.Stat(pin, &ns) != nil {
		return nil
	}
	var pids []int
	entries, _ := os.ReadDir(proc)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join(proc, e.Name(), "ns", "net"), &st) == nil && st.Dev == ns.Dev && st.Ino == ns.Ino {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// isNsfsMount reports whether path is a pinned namespace (nsfs).
func isNsfsMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
