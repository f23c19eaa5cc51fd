// Package seccomp turns the OCI runtime-spec linux.seccomp section into a
// classic BPF program and installs it with seccomp(2), in pure Go.
//
// hostnet-runc is a static CGO_ENABLED=0 binary, so libseccomp is not an
// option. This package reproduces the libseccomp/runc semantics that matter
// for OCI profiles:
//
//   - Rules whose action equals the default action are dropped (runc does
//     this because libseccomp refuses them). This matters for precedence: a
//     dropped unconditional rule cannot shadow a conditional one.
//   - For one syscall, an unconditional rule wins over conditional ones, and
//     the first unconditional rule wins over later ones (libseccomp keeps the
//     existing catch-all and discards the new one).
//   - Conditional rules for one syscall are ORed, tried in profile order; the
//     conditions inside one rule are ANDed. If one entry uses the same
//     argument index twice, runc adds each condition as its own rule, so they
//     are ORed instead; we do the same.
//   - Argument comparisons are unsigned 64-bit, evaluated on the two 32-bit
//     halves of seccomp_data.args[i].
//   - Syscall names unknown on this architecture are skipped and reported in
//     Filter.Warnings (runc logs and continues).
//   - SCMP_ACT_NOTIFY rules imply SECCOMP_FILTER_FLAG_NEW_LISTENER, and
//     Load returns the listener for the runtime to send to the agent at the
//     profile's listenerPath. As runc, the action is refused as the default
//     and for write(2), and without a listenerPath.
//
// Architecture handling is deliberately simpler than libseccomp, which keeps
// a syscall table per listed architecture. See archPrologue for the details:
// only the native ABI gets the rule table; other listed ABIs get a blanket
// action; ABIs not listed kill the process.
package seccomp

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

//go:generate go run mksyscalls.go

// Filter is a compiled seccomp profile, ready to be installed with Load.
type Filter struct {
	prog  []unix.SockFilter
	flags uint
	// notify is set when a rule returns SCMP_ACT_NOTIFY: Load then asks
	// the kernel for a listener, which the runtime hands to the agent at
	// the profile's listenerPath.
	notify bool

	// Warnings lists the syscall names in the profile that this
	// architecture's table does not know. Their rules were skipped; the
	// caller should log them.
	Warnings []string
}

// Instructions returns a copy of the BPF program.
func (f *Filter) Instructions() []unix.SockFilter { return slices.Clone(f.prog) }

// Len is the number of BPF instructions in the program.
func (f *Filter) Len() int { return len(f.prog) }

// Offsets into struct seccomp_data (linux/seccomp.h).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16 // args[6] of __u64
)

const maxSyscallArgs = 6

// argHalves returns the offsets of the low and high 32-bit words of
// seccomp_data.args[i]. Both supported architectures are little-endian.
func argHalves(i uint) (lo, hi uint32) {
	lo = offArgs + 8*uint32(i)
	return lo, lo + 4
}

// Compile turns the spec's profile into a classic BPF program for the native
// architecture.
func Compile(s *specs.LinuxSeccomp) (*Filter, error) {
	if s == nil {
		return nil, errors.New("seccomp: nil profile")
	}
	if nativeAuditArch == 0 {
		return nil, fmt.Errorf("seccomp: architecture %s is not supported", runtime.GOARCH)
	}
	flags, err := parseFlags(s.Flags)
	if err != nil {
		return nil, err
	}
	if s.DefaultAction == specs.ActNotify {
		// The init reports the listener with write(2) after loading the
		// filter; runc refuses this for the same reason.
		return nil, errors.New("seccomp: SCMP_ACT_NOTIFY cannot be used as default action")
	}
	defRet, err := actionRet(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	notify, err := checkNotify(s)
	if err != nil {
		return nil, err
	}
	if notify {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			// The kernel refuses TSYNC with a listener unless a failed
			// sync reports ESRCH instead of a thread id, which would be
			// indistinguishable from the listener's descriptor.
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
	} else if flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
		return nil, fmt.Errorf("seccomp: flag %s needs SCMP_ACT_NOTIFY rules (the kernel only accepts it with a listener)", specs.LinuxSeccompFlagWaitKillableRecv)
	}
	table, warnings, err := buildTable(s.Syscalls, defRet)
	if err != nil {
		return nil, err
	}

	c := &compiler{a: newAssembler(), defRet: defRet}
	entry := c.syscallDispatch(table)
	entry, err = c.archPrologue(s.Architectures, foreignRet(defRet, s.Syscalls), entry)
	if err != nil {
		return nil, err
	}
	prog, err := c.a.program(entry)
	if err != nil {
		return nil, err
	}
	return &Filter{prog: prog, flags: flags, notify: notify, Warnings: warnings}, nil
}

// checkNotify reports whether the profile has SCMP_ACT_NOTIFY rules and
// refuses those the runtime cannot serve, with runc's words: one on
// write(2), which the init needs to report the listener before anyone
// answers notifications, and any without a listenerPath to send the
// listener to.
func checkNotify(s *specs.LinuxSeccomp) (bool, error) {
	notify := false
	for _, call := range s.Syscalls {
		if call.Action != specs.ActNotify {
			continue
		}
		notify = true
		if slices.Contains(call.Names, "write") {
			return false, errors.New("seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall")
		}
	}
	if notify && s.ListenerPath == "" {
		return false, errors.New("seccomp: listenerPath is not set: SCMP_ACT_NOTIFY rules need an agent to send the listener to")
	}
	return notify, nil
}

// Notifies reports whether loading the filter creates a listener
// (SCMP_ACT_NOTIFY rules).
func (f *Filter) Notifies() bool { return f.notify }

// filterFlags are the spec's filter flags this package applies.
// SECCOMP_FILTER_FLAG_NEW_LISTENER is not among them: as with runc, it is
// implied by SCMP_ACT_NOTIFY rules.
var filterFlags = map[specs.LinuxSeccompFlag]uint{
	"SECCOMP_FILTER_FLAG_TSYNC":            unix.SECCOMP_FILTER_FLAG_TSYNC,
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

func parseFlags(in []specs.LinuxSeccompFlag) (uint, error) {
	var flags uint
	for _, f := range in {
		v, ok := filterFlags[f]
		if !ok {
			return 0, fmt.Errorf("seccomp: unknown flag %q (supported: %s)", f, strings.Join(KnownFlags(), ", "))
		}
		flags |= v
	}
	return flags, nil
}

// actionRet maps an action to the filter's 32-bit return value.
func actionRet(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := func() (uint32, error) {
		if errnoRet == nil {
			return uint32(unix.EPERM), nil // runc's default for ERRNO and TRACE
		}
		if *errnoRet > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("errnoRet %d does not fit in SECCOMP_RET_DATA", *errnoRet)
		}
		return uint32(*errnoRet), nil
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		d, err := data()
		return unix.SECCOMP_RET_ERRNO | d, err
	case specs.ActTrace:
		d, err := data()
		return unix.SECCOMP_RET_TRACE | d, err
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	default:
		return 0, fmt.Errorf("unknown action %q", act)
	}
}

// permissive reports whether a return value lets the syscall run.
func permissive(ret uint32) bool {
	switch ret & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG, unix.SECCOMP_RET_TRACE:
		return true
	}
	return false
}

// rule is one alternative for a syscall: if every arg condition holds, the
// filter returns ret. A rule without args is unconditional.
type rule struct {
	ret  uint32
	args []specs.LinuxSeccompArg
}

// syscallRules is everything the filter does for one syscall number.
type syscallRules struct {
	nr     uint32
	uncond *rule  // wins over conds when set
	conds  []rule // ORed, in profile order
}

func (r *syscallRules) add(nr rule) {
	switch {
	case r.uncond != nil:
		// An earlier catch-all already decides this syscall.
	case len(nr.args) == 0:
		r.uncond, r.conds = &nr, nil
	default:
		r.conds = append(r.conds, nr)
	}
}

// buildTable validates the profile's syscall entries and groups their rules
// by syscall number, in ascending order.
func buildTable(calls []specs.LinuxSyscall, defRet uint32) ([]*syscallRules, []string, error) {
	byNr := make(map[uint32]*syscallRules)
	var warnings []string
	for i, call := range calls {
		ret, err := actionRet(call.Action, call.ErrnoRet)
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, call.Names, err)
		}
		for _, arg := range call.Args {
			if arg.Index >= maxSyscallArgs {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: argument index %d out of range (max %d)", i, call.Names, arg.Index, maxSyscallArgs-1)
			}
			if !validOp(arg.Op) {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: unknown operator %q", i, call.Names, arg.Op)
			}
		}
		for _, name := range call.Names {
			if name == "" {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: empty syscall name", i)
			}
		}
		if ret == defRet {
			continue // redundant; see the package comment
		}
		rules := splitRules(ret, call.Args)
		for _, name := range call.Names {
			nr, ok := syscallNumbers[name]
			if !ok {
				if !slices.Contains(warnings, name) {
					warnings = append(warnings, name)
				}
				continue
			}
			sr := byNr[nr]
			if sr == nil {
				sr = &syscallRules{nr: nr}
				byNr[nr] = sr
			}
			for _, r := range rules {
				sr.add(r)
			}
		}
	}
	table := make([]*syscallRules, 0, len(byNr))
	for _, sr := range byNr {
		table = append(table, sr)
	}
	slices.SortFunc(table, func(a, b *syscallRules) int { return cmp.Compare(a.nr, b.nr) })
	return table, warnings, nil
}

// splitRules turns one profile entry into rules. Like runc, an entry that
// tests the same argument index more than once becomes one rule per
// condition (ORed) instead of a single ANDed rule.
func splitRules(ret uint32, args []specs.LinuxSeccompArg) []rule {
	var seen [maxSyscallArgs]bool
	repeated := false
	for _, a := range args {
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
	}
	if !repeated {
		return []rule{{ret: ret, args: args}}
	}
	rules := make([]rule, len(args))
	for i := range args {
		rules[i] = rule{ret: ret, args: args[i : i+1]}
	}
	return rules
}

func validOp(op specs.LinuxSeccompOperator) bool {
	switch op {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		return true
	}
	return false
}
