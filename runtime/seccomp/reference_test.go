package seccomp

import (
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// reference evaluates profile p for d directly from the documented
// semantics (package comment and archPrologue), with no BPF involved. The
// compiler's output is checked against it.
func reference(p *specs.LinuxSeccomp, d seccompData) uint32 {
	def := mustRet(p.DefaultAction, p.DefaultErrnoRet)

	type alt struct {
		ret  uint32
		args []specs.LinuxSeccompArg
	}
	// Rules that survive the "same as default" filter, for every syscall.
	var live []alt
	var forNr []alt
	for _, call := range p.Syscalls {
		ret := mustRet(call.Action, call.ErrnoRet)
		if ret == def {
			continue
		}
		live = append(live, alt{ret: ret})
		matchesNr := slices.ContainsFunc(call.Names, func(n string) bool {
			num, ok := syscallNumbers[n]
			return ok && num == d.nr
		})
		if !matchesNr {
			continue
		}
		if hasRepeatedIndex(call.Args) {
			for i := range call.Args {
				forNr = append(forNr, alt{ret, call.Args[i : i+1]})
			}
		} else {
			forNr = append(forNr, alt{ret, call.Args})
		}
	}

	foreign := def
	if permissive(def) && slices.ContainsFunc(live, func(a alt) bool { return !permissive(a.ret) }) {
		foreign = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	listed := func(a specs.Arch) bool { return slices.Contains(p.Architectures, a) }

	if d.arch != nativeAuditArch {
		for name, v := range auditArchs {
			if v == d.arch && listed(name) {
				return foreign
			}
		}
		return unix.SECCOMP_RET_KILL_PROCESS
	}
	if runtime.GOARCH == "amd64" && d.nr&0x40000000 != 0 {
		if listed(specs.ArchX32) {
			return foreign
		}
		return unix.SECCOMP_RET_KILL_PROCESS
	}

	// The first unconditional rule decides; otherwise the first conditional
	// rule whose conditions all hold; otherwise the default.
	for _, a := range forNr {
		if len(a.args) == 0 {
			return a.ret
		}
	}
	for _, a := range forNr {
		ok := true
		for _, c := range a.args {
			ok = ok && refCompare(c, d.args[c.Index])
		}
		if ok {
			return a.ret
		}
	}
	return def
}

func hasRepeatedIndex(args []specs.LinuxSeccompArg) bool {
	for i := range args {
		for j := range i {
			if args[i].Index == args[j].Index {
				return true
			}
		}
	}
	return false
}

// refCompare is the 64-bit meaning of a condition.
func refCompare(c specs.LinuxSeccompArg, x uint64) bool {
	v := c.Value
	switch c.Op {
	case specs.OpNotEqual:
		return x != v
	case specs.OpLessThan:
		return x < v
	case specs.OpLessEqual:
		return x <= v
	case specs.OpEqualTo:
		return x == v
	case specs.OpGreaterEqual:
		return x >= v
	case specs.OpGreaterThan:
		return x > v
	case specs.OpMaskedEqual:
		return x&v == c.ValueTwo
	}
	panic("unknown op " + c.Op)
}

func mustRet(act specs.LinuxSeccompAction, errnoRet *uint) uint32 {
	r, err := actionRet(act, errnoRet)
	if err != nil {
		panic(err)
	}
	return r
}
