package inspect

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/hostnet-dev/hostnet/spec"
)

// Usage is `hostnet --help`.
const Usage = `NAME
    hostnet - the network of the containers hostnet runs on this node

SYNOPSIS
    hostnet [--state DIR] ps [--json]
    hostnet [--state DIR] ports [--json]
    hostnet [--state DIR] doctor [--fix] [--containerd-config FILE] [--json]
    hostnet help

DESCRIPTION
    hostnet reads what containerd-shim-hostnet-v1 and hostnet-runc record
    (each container's bundle, the runtime's state, the bridge's address
    leases, the nftables table "hostnet") and the host's sockets. It never
    asks containerd, so it works while containerd is down, and it changes
    nothing but what doctor --fix removes. Run it as root: other users'
    sockets, the runtime's state and the nftables table are root's to read.

COMMANDS
    ps     Every container a hostnet shim runs or left a record of, in every
           containerd namespace: namespace, id, network mode and why it got
           that mode (annotation, default mode, joined netns, client
           network), the init's pid, its network namespace ("host" when it
           shares the host's), a bridge-mode container's address, the ports
           it publishes (bridge) or declares (host), and its status:
           created, running, paused, stopped (the init exited, the shim
           still runs), or stale (the init and the shim are gone: the
           record is left over; ctr task delete, or containerd's restart,
           removes it).

    ports  Every listening TCP port and bound UDP port in the host's network
           namespace with its holder: a host-mode container (which one), a
           plain host process (pid, command), and every port a bridge-mode
           container publishes. CONFLICT says what goes wrong: a port a
           host-mode container declared that another process holds, a
           publication that shadows a process listening on the same port,
           a publication no running container receives.

    doctor Checks the node and says what to fix, each finding with a
           one-line remedy (STATUS ok, warn, fail, or fixed):
           containerd   the containerd serving --state (found by its
                        command line and configuration), its version
                        against the releases hostnet was measured with
                        (1.6 to 2.4);
           shim         containerd-shim-hostnet-v1 on containerd's PATH
                        (from its environment) or beside containerd;
           runtime      hostnet-runc (or [runtime] binary) where the shim
                        finds it: beside the shim, then on the PATH;
           node-config  the node's file parses: $HOSTNET_CONFIG of this
                        command, else of containerd's environment, else
                        /etc/containerd/hostnet.toml;
           cri          containerd's configuration has a CRI runtime of
                        type io.containerd.hostnet.v1 whose pod_annotations
                        pass hostnet.containerd.io/network;
           cgroup       cgroup version and driver (systemd_cgroup needs
                        systemd as init);
           nftables     hostnet can talk to nftables over netlink;
           ip_forward, forward-policy
                        what forwarding bridge mode finds: an iptables
                        FORWARD policy of DROP is covered by bridge mode's
                        per-container accept rules if the iptables command
                        of that flavour is installed; an nftables forward
                        chain of another table that drops is not;
           subnet       the bridge's subnet overlaps no route and no other
                        interface's address;
           leftover     what stale containers (as ps says: init and shim
                        gone) left on the host: netns pin, IPAM lease,
                        nftables rules, iptables FORWARD rules, veth; and
                        leases and rules of this containerd's containers
                        whose bundle is gone. A running container's
                        records are never leftovers, nor are another
                        containerd's.

OPTIONS
    --state DIR  containerd's state directory (default /run/containerd);
                 bundles are read from DIR/io.containerd.runtime.v2.task.
    --json       print a JSON array instead of a table.
    -h, --help   print this help.

    doctor only:
    --fix        remove the leftovers found, only what hostnet made and
                 only what is proven stale, checked again right before
                 its removal; each removal is reported as "fixed".
    --containerd-config FILE
                 containerd's configuration (default: the one the
                 containerd serving --state runs with, else
                 /etc/containerd/config.toml).

    On a terminal, the table is cut to its width ("…" marks a cut cell);
    piped, lines are whole.

EXIT STATUS
    0 on success, 1 on error, 2 on a usage error. doctor: 0 when no check
    fails (warnings do not count, nor leftovers --fix removed), 1 when one
    does (each failure is a line with STATUS fail), 2 on a usage error.
`

// Main runs the hostnet command with args (without the program name) and
// returns its exit status.
func Main(args []string, stdout, stderr *os.File) int {
	o := Options{}
	global := flag.NewFlagSet("hostnet", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&o.State, "state", DefaultState, "")
	help := global.Bool("help", false, "")
	global.BoolVar(help, "h", false, "")
	if err := global.Parse(args); err != nil {
		return usageError(stderr, err)
	}
	if *help {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usageError(stderr, errors.New("a command is required"))
	}
	cmd, rest := rest[0], rest[1:]
	if cmd == "help" {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	sub := flag.NewFlagSet("hostnet "+cmd, flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	sub.StringVar(&o.State, "state", o.State, "")
	asJSON := sub.Bool("json", false, "")
	var do DoctorOptions
	if cmd == "doctor" {
		sub.BoolVar(&do.Fix, "fix", false, "")
		sub.StringVar(&do.ContainerdConfig, "containerd-config", "", "")
	}
	sub.BoolVar(help, "help", false, "")
	sub.BoolVar(help, "h", false, "")
	if err := sub.Parse(rest); err != nil {
		return usageError(stderr, err)
	}
	if *help {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if sub.NArg() > 0 {
		return usageError(stderr, fmt.Errorf("%s takes no arguments, got %q", cmd, sub.Args()))
	}
	var err error
	switch cmd {
	case "ps":
		err = ps(o, *asJSON, stdout)
	case "ports":
		err = ports(o, *asJSON, stdout, stderr)
	case "doctor":
		do.Options = o
		return doctorCmd(do, *asJSON, stdout, stderr)
	default:
		return usageError(stderr, fmt.Errorf("unknown command %q", cmd))
	}
	if err != nil {
		fmt.Fprintf(stderr, "hostnet %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "hostnet: %v\nRun 'hostnet --help' for usage.\n", err)
	return 2
}

func ps(o Options, asJSON bool, stdout *os.File) error {
	ctrs, err := Containers(o)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, ctrs)
	}
	t := &table{
		header: []string{"NAMESPACE", "ID", "MODE", "WHY", "PID", "NETNS", "ADDRESS", "PORTS", "STATUS", "NOTES"},
		// WHY and NOTES read well cut; namespaces and ids are what a
		// reader looks for, and stay whole.
		shrink: []int{3, 9, 7, 5},
	}
	for _, c := range ctrs {
		pid := ""
		if c.Pid > 0 {
			pid = strconv.Itoa(c.Pid)
		}
		var addrs []string
		for _, a := range []netip.Addr{c.Address, c.Address6} {
			if a.IsValid() {
				addrs = append(addrs, a.String())
			}
		}
		addr := strings.Join(addrs, ",")
		t.add(c.Namespace, c.ID, c.Mode, c.Why, pid, c.NetNS, addr, portList(c.Ports), c.Status, strings.Join(c.Notes, "; "))
	}
	return t.write(stdout, terminalWidth(stdout))
}

func ports(o Options, asJSON bool, stdout, stderr *os.File) error {
	list, warnings, err := Ports(o)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "hostnet ports: %s\n", w)
	}
	if asJSON {
		return writeJSON(stdout, list)
	}
	t := &table{
		header: []string{"PROTO", "ADDRESS", "PORT", "HOLDER", "CONTAINER", "PID", "COMMAND", "TARGET", "CONFLICT"},
		// The holder's container stays whole, as does where a port goes.
		shrink: []int{6, 8},
	}
	for _, p := range list {
		pid := ""
		if p.Pid > 0 {
			pid = strconv.Itoa(p.Pid)
		}
		t.add(p.Protocol, p.Address.String(), strconv.Itoa(int(p.Port)), p.Holder, p.Container, pid, p.Command, p.Target, strings.Join(p.Conflicts, "; "))
	}
	return t.write(stdout, terminalWidth(stdout))
}

func doctorCmd(o DoctorOptions, asJSON bool, stdout, stderr *os.File) int {
	findings := Doctor(o)
	var err error
	if asJSON {
		err = writeJSON(stdout, findings)
	} else {
		t := &table{
			header: []string{"CHECK", "STATUS", "FINDING", "REMEDY"},
			shrink: []int{3, 2},
		}
		for _, f := range findings {
			t.add(f.Check, f.Status, f.Message, f.Remedy)
		}
		err = t.write(stdout, terminalWidth(stdout))
	}
	if err != nil {
		fmt.Fprintf(stderr, "hostnet doctor: %v\n", err)
		return 1
	}
	if failed := FailedChecks(findings); len(failed) > 0 {
		fmt.Fprintf(stderr, "hostnet doctor: failed: %s\n", strings.Join(failed, ", "))
		return 1
	}
	return 0
}

// portList is ports as the annotation writes them.
func portList(ports []spec.PortMapping) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func writeJSON[T any](w io.Writer, v []T) error {
	if v == nil {
		v = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
