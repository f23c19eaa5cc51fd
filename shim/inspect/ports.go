package inspect

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"

	"github.com/hostnet-dev/hostnet/shim/internal/procnet"
	"github.com/hostnet-dev/hostnet/shim/network/nat"
	"github.com/hostnet-dev/hostnet/spec"
)

// Holders of a port.
const (
	HolderHost    = "host" // a process of the host
	HolderHostCtr = "host-mode container"
	HolderPublish = "publish" // a bridge-mode container's published port
)

// Port is a host port in use: a listening socket in the network namespace
// hostnet runs in (the host's), or a port the nftables table publishes.
type Port struct {
	Protocol string     `json:"protocol"`
	Address  netip.Addr `json:"address"`
	Port     uint16     `json:"port"`
	Holder   string     `json:"holder"`
	// Container is the holding container, namespace/id; for a publication
	// whose container has no record, the rule's owner key.
	Container string `json:"container,omitempty"`
	// Pid and Command are the lowest-numbered process holding the socket.
	Pid     int    `json:"pid,omitempty"`
	Command string `json:"command,omitempty"`
	// Target is where a publication sends connections.
	Target string `json:"target,omitempty"`
	// Conflicts name what else claims the port.
	Conflicts []string `json:"conflicts,omitempty"`
}

// Ports lists the host's listening ports with their holders, then the
// ports the nftables table publishes, each with the conflicts it is part
// of: a port a host-mode container declared that another process holds,
// and a publication that shadows a listener on the host or that no running
// container receives.
//
// Warnings say what could not be read (the nftables table without
// CAP_NET_ADMIN); the list is complete otherwise.
func Ports(o Options) (_ []*Port, warnings []string, _ error) {
	o = o.withDefaults()
	ctrs, err := Containers(o)
	if err != nil {
		return nil, nil, err
	}
	socks, err := procnet.Listening(filepath.Join(o.Proc, "self", "net"))
	if err != nil {
		return nil, nil, err
	}
	inodes := map[string]bool{}
	for _, s := range socks {
		inodes[s.Inode] = true
	}
	holders := procnet.Holders(o.Proc, inodes)
	self := nsOf(o.Proc, "self", "pid")
	var out []*Port
	for _, s := range socks {
		p := &Port{Protocol: s.Proto, Address: s.Addr, Port: s.Port, Holder: HolderHost}
		if pids := holders[s.Inode]; len(pids) > 0 {
			p.Pid, p.Command = pids[0], procnet.Command(o.Proc, pids[0])
			if c := containerOf(o.Proc, pids[0], ctrs, self); c != nil {
				p.Holder, p.Container = HolderHostCtr, c.Name()
			}
		}
		out = append(out, p)
	}
	pubs, err := publications(ctrs)
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	listeners := out
	out = append(out, pubs...)
	declaredConflicts(listeners, ctrs)
	shadowing(listeners, pubs)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Protocol != b.Protocol {
			return a.Protocol > b.Protocol // tcp first
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Address.Less(b.Address)
	})
	return out, warnings, nil
}

// containerOf finds the running container pid belongs to: a descendant of
// its init, or a process of the init's own pid namespace (an exec is the
// shim's child, not the init's).
func containerOf(proc string, pid int, ctrs []*Container, selfPidNS string) *Container {
	running := map[int]*Container{}
	for _, c := range ctrs {
		if c.Pid > 0 {
			running[c.Pid] = c
		}
	}
	for p, n := pid, 0; p > 1 && n < 4096; p, n = parentPid(proc, p), n+1 {
		if c := running[p]; c != nil {
			return c
		}
	}
	pidNS := nsOf(proc, fmt.Sprint(pid), "pid")
	for _, c := range ctrs {
		if c.Pid > 0 && c.initPidNS != "" && c.initPidNS != selfPidNS && c.initPidNS == pidNS {
			return c
		}
	}
	return nil
}

// publications lists the ports the nftables tables of ctrs (and the
// default one) publish; the error says which table could not be read.
func publications(ctrs []*Container) ([]*Port, error) {
	byKey := map[string]*Container{}
	tables := map[string]bool{nat.DefaultTable: true}
	for _, c := range ctrs {
		if c.Key != "" {
			byKey[c.Key] = c
			tables[c.natTable] = true
		}
	}
	var out []*Port
	var errs []error
	for table := range tables {
		if table == "" {
			continue
		}
		pubs, err := nat.Table{Name: table}.Published()
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to read published ports: %w", err))
			continue
		}
		for _, pub := range pubs {
			m := pub.Mapping
			addr := m.HostIP
			if !addr.IsValid() {
				addr = netip.IPv4Unspecified()
			}
			p := &Port{Protocol: m.Protocol, Address: addr, Port: m.HostPort, Holder: HolderPublish, Container: pub.Owner}
			c := byKey[pub.Owner]
			if c == nil {
				p.Conflicts = append(p.Conflicts, "no container of this state directory has this rule (another containerd's, or a leftover)")
			} else {
				p.Container = c.Name()
				// The container's address of the host IP's family; IPv4's
				// for a mapping without one, which has a rule in each.
				target := c.Address
				if m.HostIP.Is6() || !target.IsValid() {
					target = c.Address6
				}
				if target.IsValid() {
					p.Target = netip.AddrPortFrom(target, m.ContainerPort).String()
				}
				if c.Pid == 0 {
					p.Conflicts = append(p.Conflicts, fmt.Sprintf("nobody receives it: %s is %s", c.Name(), c.Status))
				}
			}
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

// declaredConflicts marks listeners on a port a host-mode container
// declared that another process holds.
func declaredConflicts(listeners []*Port, ctrs []*Container) {
	for _, c := range ctrs {
		if c.Key != "" || c.Mode != string(spec.ModeHost) || c.Pid == 0 {
			continue
		}
		for _, d := range c.Ports {
			for _, l := range listeners {
				if l.Protocol != d.Protocol || l.Port != d.ContainerPort || l.Container == c.Name() {
					continue
				}
				if d.HostIP.IsValid() && !overlap(l.Address, d.HostIP) {
					continue
				}
				l.Conflicts = append(l.Conflicts, fmt.Sprintf("port %d/%s is declared by host-mode container %s", d.ContainerPort, d.Protocol, c.Name()))
			}
		}
	}
}

// shadowing marks listeners whose connections a publication's DNAT takes,
// and the publication.
func shadowing(listeners, pubs []*Port) {
	for _, pub := range pubs {
		for _, l := range listeners {
			if l.Protocol != pub.Protocol || l.Port != pub.Port || !overlap(l.Address, pub.Address) {
				continue
			}
			who := fmt.Sprintf("pid %d (%s)", l.Pid, l.Command)
			if l.Container != "" {
				who = "host-mode container " + l.Container
			}
			pub.Conflicts = append(pub.Conflicts, "shadows "+who+" listening on "+netip.AddrPortFrom(l.Address, l.Port).String())
			l.Conflicts = append(l.Conflicts, fmt.Sprintf("shadowed: bridge-mode container %s publishes this port", pub.Container))
		}
	}
}

// overlap reports whether sockets bound to a and b can receive the same
// connections: equal addresses or either unspecified.
func overlap(a, b netip.Addr) bool {
	return a == b || a.IsUnspecified() || b.IsUnspecified()
}
