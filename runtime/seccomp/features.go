package seccomp

import (
	"errors"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// What this package implements, for `hostnet-runc features`. The lists are
// tied to Compile by the package's tests: each listed name compiles.

// KnownActions lists the actions Compile accepts.
func KnownActions() []string {
	return []string{
		string(specs.ActAllow), string(specs.ActErrno), string(specs.ActKill), string(specs.ActKillProcess),
		string(specs.ActKillThread), string(specs.ActLog), string(specs.ActNotify), string(specs.ActTrace),
		string(specs.ActTrap),
	}
}

// KnownOperators lists the argument comparisons Compile accepts.
func KnownOperators() []string {
	return []string{
		string(specs.OpEqualTo), string(specs.OpGreaterEqual), string(specs.OpGreaterThan), string(specs.OpLessEqual),
		string(specs.OpLessThan), string(specs.OpMaskedEqual), string(specs.OpNotEqual),
	}
}

// KnownArchs lists the architectures a profile may name: SCMP_ARCH_X32 and
// every ABI with an audit arch value (see archPrologue for what a
// non-native one gets).
func KnownArchs() []string {
	out := []string{string(specs.ArchX32)}
	for a := range auditArchs {
		out = append(out, string(a))
	}
	slices.Sort(out)
	return out
}

// KnownFlags lists the filter flags Compile accepts.
func KnownFlags() []string {
	out := make([]string, 0, len(filterFlags))
	for f := range filterFlags {
		out = append(out, string(f))
	}
	slices.Sort(out)
	return out
}

// SupportedFlags lists the known flags this kernel accepts. It asks the
// way libseccomp does: seccomp(SECCOMP_SET_MODE_FILTER, flag, NULL) fails
// with EFAULT, reading the missing program, once the flag has passed the
// kernel's check, and with EINVAL before that. Nothing is installed.
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is asked together with the
// listener it needs (Compile refuses it without SCMP_ACT_NOTIFY rules).
func SupportedFlags() []string {
	var out []string
	for _, name := range KnownFlags() {
		flag := filterFlags[specs.LinuxSeccompFlag(name)]
		if flag == unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
			flag |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		}
		if kernelAcceptsFlag(flag) {
			out = append(out, name)
		}
	}
	return out
}

func kernelAcceptsFlag(flag uint) bool {
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flag), 0)
	return errors.Is(errno, unix.EFAULT)
}
