package initproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/spec"
)

// setUser switches to the spec's uid/gid and leaves exactly the spec's
// capabilities. The bounding set is dropped first (that needs CAP_SETPCAP),
// then the ids change with keep-caps on, so the permitted set survives the
// switch from uid 0, then the other sets are applied: capset(2) can only
// keep what survived, and after it the process may no longer be able to
// change its ids.
func setUser(sys Syscalls, proc *specs.Process) error {
	want := proc.Capabilities
	if want == nil {
		want = &specs.LinuxCapabilities{}
	}
	if err := sys.SetBounding(capList(want.Bounding)); err != nil {
		return fmt.Errorf("drop bounding capabilities: %w", err)
	}

	if err := sys.SetKeepCaps(true); err != nil {
		return fmt.Errorf("set keep-caps: %w", err)
	}
	u := proc.User
	gids := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		gids[i] = int(g)
	}
	// setgroups is refused in a user namespace whose setgroups is "deny";
	// with no extra groups asked for there is nothing to set.
	if err := sys.Setgroups(gids); err != nil && len(gids) > 0 {
		return fmt.Errorf("setgroups %v: %w", gids, err)
	}
	if err := sys.Setresgid(int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := sys.Setresuid(int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	if err := sys.SetKeepCaps(false); err != nil {
		return fmt.Errorf("clear keep-caps: %w", err)
	}

	if err := sys.SetCapabilities(capList(want.Effective), capList(want.Permitted), capList(want.Inheritable)); err != nil {
		return fmt.Errorf("apply capabilities: %w", err)
	}
	if err := sys.ResetAmbient(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("reset ambient capabilities: %w", err)
	}
	// The kernel refuses an ambient capability that is not also permitted
	// and inheritable; like runc, such a spec still runs without it.
	for _, c := range capList(want.Ambient) {
		_ = sys.RaiseAmbient(c)
	}
	return nil
}

// capList maps names to capabilities with the parser the shim checks
// with: exact, case-sensitive names, as runc reads them. Names unknown to
// the library or this kernel are skipped, as runc does, so a newer spec
// still runs; UnknownCapabilities lists them for the warning.
func capList(names []string) []capability.Cap {
	last, _ := capability.LastCap()
	out := make([]capability.Cap, 0, len(names))
	for _, n := range names {
		if c, ok := spec.ParseCapability(n); ok && c <= last {
			out = append(out, c)
		}
	}
	return out
}

// UnknownCapabilities lists, sorted, the names in c that capList skips:
// runc warns "ignoring unknown or unavailable capabilities" with them.
func UnknownCapabilities(c *specs.LinuxCapabilities) []string {
	if c == nil {
		return nil
	}
	last, _ := capability.LastCap()
	var out []string
	for _, set := range spec.CapabilitySets(c) {
		for _, n := range *set.Names {
			if cp, ok := spec.ParseCapability(n); (!ok || cp > last) && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

var rlimitsByName = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// ParseRlimit maps a spec rlimit name to its resource number.
func ParseRlimit(name string) (int, error) {
	r, ok := rlimitsByName[name]
	if !ok {
		return 0, fmt.Errorf("unknown rlimit type %q", name)
	}
	return r, nil
}

// setRlimits runs while still root, since raising a hard limit needs
// CAP_SYS_RESOURCE.
func setRlimits(sys Syscalls, limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		r, err := ParseRlimit(l.Type)
		if err != nil {
			return err
		}
		if err := sys.Prlimit(r, unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("set rlimit %s (soft %d, hard %d): %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	return nil
}

// withHome adds HOME from the container's /etc/passwd when the spec does
// not set it, as runc does; "/" when the user has no entry.
func withHome(env []string, uid uint32) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			return env
		}
	}
	home := "/"
	if f, err := os.Open("/etc/passwd"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// name:password:uid:gid:gecos:home:shell
			fields := strings.Split(sc.Text(), ":")
			if len(fields) >= 6 && fields[2] == strconv.FormatUint(uint64(uid), 10) {
				home = fields[5]
				break
			}
		}
	}
	return append(append([]string{}, env...), "HOME="+home)
}
