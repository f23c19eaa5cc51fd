// Package inspect reads what hostnet's shims and runtime recorded on this
// node — bundles, runtime state, the bridge's IPAM and nftables table — and
// the host's sockets, for the `hostnet` command, and checks the node
// (Doctor). It never talks to containerd, so it works with containerd
// down, and it changes nothing but the leftovers of stale containers that
// Doctor removes when asked to fix.
package inspect

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hostnet-dev/hostnet/runtime/container"
	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/shim/network/nat"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
	"github.com/hostnet-dev/hostnet/spec"
)

// DefaultState is containerd's default state directory.
const DefaultState = "/run/containerd"

// taskDir is where containerd keeps the bundles of v2 shims in its state
// directory: <state>/io.containerd.runtime.v2.task/<namespace>/<id>.
const taskDir = "io.containerd.runtime.v2.task"

// Status values. Created, running, paused and stopped are the runtime's
// (container.Status); stale is a record whose init and shim are gone.
const (
	StatusStale = "stale"
)

// Container is one container a hostnet shim runs, or ran and left a record
// of.
type Container struct {
	Namespace string `json:"namespace"`
	ID        string `json:"id"`
	Bundle    string `json:"bundle"`
	// Mode and Why are what the shim recorded (bundle.Mode); Mode is empty
	// for a bundle of a shim that did not record it.
	Mode string `json:"mode"`
	Why  string `json:"why"`
	// Pid is the init's pid while it runs, else 0.
	Pid int `json:"pid"`
	// NetNS is "host" when the container shares the network namespace
	// hostnet runs in, else the namespace (net:[inode]) of its init or the
	// bundle's pin.
	NetNS string `json:"netns"`
	// Address and Address6 are a bridge-mode container's IPv4 and IPv6
	// addresses (either may be missing).
	Address  netip.Addr `json:"address,omitzero"`
	Address6 netip.Addr `json:"address6,omitzero"`
	// Key is a bridge-mode container's key in the IPAM and nftables table.
	Key string `json:"key,omitempty"`
	// Ports are the ports a bridge-mode container publishes (as the
	// nftables table holds them) or a host-mode container declares.
	Ports  []spec.PortMapping `json:"ports"`
	Status string             `json:"status"`
	// Notes say what is off: a stale record, a lease or rule that is
	// missing, a record that cannot be read.
	Notes []string `json:"notes,omitempty"`

	// initNetNS, initPidNS are the init's namespaces, for matching the
	// holders of sockets.
	initNetNS, initPidNS string
	// natTable is the nftables table a bridge-mode container's rules are in.
	natTable string
}

// Name is namespace/id.
func (c *Container) Name() string { return c.Namespace + "/" + c.ID }

// Options say where to look.
type Options struct {
	// State is containerd's state directory (DefaultState if empty).
	State string
	// Proc is the proc file system ("/proc" if empty).
	Proc string
}

func (o Options) withDefaults() Options {
	if o.State == "" {
		o.State = DefaultState
	}
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	return o
}

// Containers lists the containers whose bundles in o.State a hostnet shim
// made (those with a runtime record), sorted by namespace and id.
func Containers(o Options) ([]*Container, error) {
	o = o.withDefaults()
	root := filepath.Join(o.State, taskDir)
	nss, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(o.State); serr != nil {
			return nil, fmt.Errorf("containerd state directory %s: %w", o.State, serr)
		}
		return nil, nil // no task was ever run
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list containerd namespaces: %w", err)
	}
	hostNet := nsOf(o.Proc, "self", "net")
	var out []*Container
	tables := natTables{}
	for _, ns := range nss {
		if !ns.IsDir() {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(root, ns.Name()))
		if err != nil {
			return nil, fmt.Errorf("failed to list bundles of namespace %s: %w", ns.Name(), err)
		}
		for _, id := range ids {
			if !id.IsDir() {
				continue
			}
			b := bundle.New(filepath.Join(root, ns.Name(), id.Name()))
			var rt ociruntime.Config
			if err := b.ReadRuntime(&rt); errors.Is(err, os.ErrNotExist) {
				continue // another shim's bundle, or not created yet
			} else if err != nil {
				out = append(out, &Container{Namespace: ns.Name(), ID: id.Name(), Bundle: b.Path,
					Status: "unknown", Notes: []string{err.Error()}})
				continue
			}
			out = append(out, readContainer(o, b, ns.Name(), id.Name(), rt, hostNet, tables))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func readContainer(o Options, b bundle.Bundle, ns, id string, rt ociruntime.Config, hostNet string, tables natTables) *Container {
	c := &Container{Namespace: ns, ID: id, Bundle: b.Path, Ports: []spec.PortMapping{}}
	switch m, err := b.ReadMode(); {
	case err == nil:
		c.Mode, c.Why = m.Mode, m.Why
	case errors.Is(err, os.ErrNotExist):
		c.note("the shim recorded no network mode (a shim older than hostnet ps)")
	default:
		c.note("%v", err)
	}
	c.Status = status(b, id, rt, c)
	if c.Pid > 0 {
		c.initNetNS = nsOf(o.Proc, strconv.Itoa(c.Pid), "net")
		c.initPidNS = nsOf(o.Proc, strconv.Itoa(c.Pid), "pid")
		c.NetNS = c.initNetNS
		if c.NetNS != "" && c.NetNS == hostNet {
			c.NetNS = "host"
		}
	}
	var rec network.Record
	switch err := b.ReadNetwork(&rec); {
	case err == nil:
		readBridge(c, rec)
		c.natTable = rec.NAT.Name
		c.Ports = tables.publishedBy(c, rec.NAT.Name)
	case !errors.Is(err, os.ErrNotExist):
		c.note("%v", err)
	}
	if c.Key == "" {
		// Declared ports: a host-mode container's, from its annotation.
		if s, err := b.ReadSpec(); err == nil {
			if ports, err := spec.PortsFor(s); err == nil {
				c.Ports = append(c.Ports, ports...)
			}
		}
	}
	return c
}

// status tells the container's status from its runtime's state: the
// runtime's own verdict while the init lives (its start time guards
// against a reused pid). Once the init is gone, a record whose shim still
// answers is stopped (containerd has not deleted it yet); one whose shim is
// gone too is stale: nothing will clean it up but `ctr task delete` or
// containerd's restart.
func status(b bundle.Bundle, id string, rt ociruntime.Config, c *Container) string {
	st, err := container.Load(rt.Root, id)
	if err == nil {
		if s := st.Status(); s != container.Stopped {
			c.Pid = st.InitPid
			return s
		}
	} else if !errors.Is(err, container.ErrNotExist) {
		c.note("runtime state: %v", err)
	}
	if shimAnswers(b) {
		return container.Stopped
	}
	if err != nil {
		c.note("no runtime state in %s and no shim", rt.Root)
	} else {
		c.note("init %d is gone and so is its shim", st.InitPid)
	}
	return StatusStale
}

// shimAnswers reports whether the bundle's shim accepts connections.
func shimAnswers(b bundle.Bundle) bool {
	addr := b.ShimAddress()
	if addr == "" {
		return false
	}
	// containerd's pkg/shim.CanConnect, without linking pkg/shim into
	// this command.
	path, _ := strings.CutPrefix(addr, "unix://")
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// readBridge fills in what bridge mode recorded, checked against the IPAM
// leases.
func readBridge(c *Container, rec network.Record) {
	c.Key = rec.Key
	c.Address, c.Address6 = rec.Address, rec.Address6
	if c.NetNS == "" {
		c.NetNS = rec.NetNS
	}
	if !rec.Address.IsValid() && !rec.Address6.IsValid() {
		c.note("no address leased")
		return
	}
	for _, l := range []struct {
		subnet        netip.Prefix
		gateway, addr netip.Addr
	}{{rec.Subnet, rec.Gateway, rec.Address}, {rec.Subnet6, rec.Gateway6, rec.Address6}} {
		if l.subnet.IsValid() {
			checkLease(c, rec, l.subnet, l.gateway, l.addr)
		}
	}
}

func checkLease(c *Container, rec network.Record, subnet netip.Prefix, gateway, addr netip.Addr) {
	a, err := ipam.New(rec.IPAMDir, subnet, gateway)
	if err != nil {
		c.note("IPAM: %v", err)
		return
	}
	leases, err := a.Leases()
	if err != nil {
		c.note("IPAM: %v", err)
		return
	}
	if !addr.IsValid() {
		c.note("no address of %s leased", subnet)
		return
	}
	if owner := leases[addr]; owner != rec.Key {
		if owner == "" {
			c.note("address %s is not leased in %s", addr, rec.IPAMDir)
		} else {
			c.note("address %s is leased to %s", addr, owner)
		}
	}
}

// natTables are the publications of each nftables table read so far.
type natTables map[string]tablePubs

type tablePubs struct {
	list []nat.Publication
	err  error
}

// publishedBy returns the ports table publishes for c.
func (t natTables) publishedBy(c *Container, table string) []spec.PortMapping {
	if table == "" {
		table = nat.DefaultTable
	}
	pubs, ok := t[table]
	if !ok {
		pubs.list, pubs.err = nat.Table{Name: table}.Published()
		t[table] = pubs
	}
	out := []spec.PortMapping{}
	if pubs.err != nil {
		c.note("nftables: %v", pubs.err)
		return out
	}
	for _, p := range pubs.list {
		if p.Owner == c.Key {
			out = append(out, p.Mapping)
		}
	}
	return out
}

func (c *Container) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

// nsOf is the namespace of kind of process pid, as its /proc link reads
// ("net:[4026531840]"), or "" if it cannot be read.
func nsOf(proc, pid, kind string) string {
	link, err := os.Readlink(filepath.Join(proc, pid, "ns", kind))
	if err != nil {
		return ""
	}
	return link
}
