package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sysctl is a spec's sysctl key in its two forms. Dotted is the form
// sysctl(8) prints, where a '/' stands for a '.' inside a component
// ("net.ipv4.conf.eth0/100.rp_filter" for the interface eth0.100); Path is
// the file under /proc/sys it names ("net/ipv4/conf/eth0.100/rp_filter").
// Checks read Dotted and the runtime writes Path: both come from one
// parse, so what is checked is what is written.
type Sysctl struct {
	Dotted string
	Path   string
}

// ParseSysctl reads a spec's sysctl key. Like runc and sysctl.d(5), a key
// whose first separator is a '/' is in the slash form and has its '.' and
// '/' swapped. A key that does not name a file under /proc/sys by plain
// descent (an empty, "." or ".." component, as in ".net.ipv4.ip_forward",
// "net..ipv4" or "kernel/../net") is refused: no other runtime check is
// done on a name the kernel would read differently.
func ParseSysctl(key string) (Sysctl, error) {
	dotted := key
	if i := strings.IndexAny(key, "./"); i >= 0 && key[i] == '/' {
		dotted = swapDotsAndSlashes(key)
	}
	path := swapDotsAndSlashes(dotted)
	for comp := range strings.SplitSeq(path, "/") {
		if comp == "" || comp == "." || comp == ".." || strings.ContainsRune(comp, 0) {
			return Sysctl{}, fmt.Errorf("invalid sysctl name %q: it does not name a file under /proc/sys", key)
		}
	}
	return Sysctl{Dotted: dotted, Path: path}, nil
}

// swapDotsAndSlashes works on bytes: strings.Map would turn each invalid
// UTF-8 byte into U+FFFD, and the file written would not be the key checked.
func swapDotsAndSlashes(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch c {
		case '.':
			b[i] = '/'
		case '/':
			b[i] = '.'
		}
	}
	return string(b)
}

// ipcSysctls are the kernel.* sysctls of an IPC namespace; fs.mqueue.* are
// too (runc's list, libcontainer/configs/validate).
var ipcSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// CheckSysctls refuses sysctls outside the namespaces the container has of
// its own, with runc's rules and messages: /proc/sys is only partly
// namespaced, and a key outside them changes the host. isHostNetNS reports
// whether a network namespace the spec joins by path is the caller's own
// (runc compares it with /proc/self/ns/net); it is only called for net.*
// keys.
func CheckSysctls(s *specs.Spec, isHostNetNS func(path string) (bool, error)) error {
	if s.Linux == nil || len(s.Linux.Sysctl) == 0 {
		return nil
	}
	// Sorted: the same spec always gets the same error.
	for _, key := range slices.Sorted(maps.Keys(s.Linux.Sysctl)) {
		if err := checkSysctl(s, key, isHostNetNS); err != nil {
			return err
		}
	}
	return nil
}

func checkSysctl(s *specs.Spec, key string, isHostNetNS func(string) (bool, error)) error {
	sc, err := ParseSysctl(key)
	if err != nil {
		return err
	}
	k := sc.Dotted
	switch {
	case slices.Contains(ipcSysctls, k) || strings.HasPrefix(k, "fs.mqueue."):
		if !HasNamespace(s, specs.IPCNamespace) {
			return fmt.Errorf("sysctl %q is not allowed in the hosts ipc namespace", k)
		}
		return nil
	case strings.HasPrefix(k, "net."):
		ns, ok := NetworkNamespace(s)
		if !ok {
			return fmt.Errorf("sysctl %q not allowed in host network namespace", k)
		}
		if ns.Path != "" {
			host, err := isHostNetNS(ns.Path)
			if err != nil {
				return fmt.Errorf("invalid netns path: %w", err)
			}
			if host {
				return fmt.Errorf("sysctl %q not allowed in host network namespace", k)
			}
		}
		return nil
	case HasNamespace(s, specs.UTSNamespace) && k == "kernel.domainname":
		return nil
	case HasNamespace(s, specs.UTSNamespace) && k == "kernel.hostname":
		return fmt.Errorf("sysctl %q is not allowed as it conflicts with the OCI %q field", k, "hostname")
	case strings.HasPrefix(k, "user."):
		if !HasNamespace(s, specs.UserNamespace) {
			return fmt.Errorf("setting ucounts without a user namespace not allowed: %v", k)
		}
		return nil
	}
	return fmt.Errorf("sysctl %q is not in a separate kernel namespace", k)
}
