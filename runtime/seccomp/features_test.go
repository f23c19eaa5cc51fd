package seccomp

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestFeatureListsCompile ties what `hostnet-runc features` reports to
// Compile: every listed action, operator, architecture and flag compiles,
// and what is left out does not.
func TestFeatureListsCompile(t *testing.T) {
	for _, a := range KnownActions() {
		act := specs.LinuxSeccompAction(a)
		if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: act}}}); err != nil {
			t.Errorf("listed action %s: %v", a, err)
		}
	}
	for _, op := range KnownOperators() {
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
			Names: []string{"getpid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.LinuxSeccompOperator(op)}},
		}}}
		if _, err := Compile(p); err != nil {
			t.Errorf("listed operator %s: %v", op, err)
		}
	}
	for _, a := range KnownArchs() {
		if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.Arch(a)}}); err != nil {
			t.Errorf("listed arch %s: %v", a, err)
		}
	}
	for _, f := range KnownFlags() {
		if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlag(f)}}); err != nil {
			t.Errorf("listed flag %s: %v", f, err)
		}
	}
	if slices.Contains(KnownActions(), string(specs.ActNotify)) {
		t.Error("SCMP_ACT_NOTIFY is listed but not implemented")
	}
	if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActNotify}); err == nil {
		t.Error("SCMP_ACT_NOTIFY compiled although features leaves it out")
	}
	if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}}); err == nil {
		t.Error("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV compiled although features leaves it out")
	}
}

// TestSupportedFlagsLoad: each flag SupportedFlags reports loads with a
// real filter in a child, and the probe tells a flag the kernel lacks.
func TestSupportedFlagsLoad(t *testing.T) {
	requireSeccomp(t)
	supported := SupportedFlags()
	if len(supported) == 0 {
		t.Fatal("no supported flags on a kernel with seccomp (TSYNC exists since Linux 3.17)")
	}
	for _, f := range supported {
		if !slices.Contains(KnownFlags(), f) {
			t.Errorf("supported flag %s is not a known flag", f)
		}
		out, err := startChild(t, "flag", "HOSTNET_SECCOMP_TEST_FLAG="+f)
		if err != nil || !strings.Contains(out, "loaded") {
			t.Errorf("flag %s is reported supported but does not load: %v\n%s", f, err, out)
		}
	}
	if kernelAcceptsFlag(1 << 30) {
		t.Error("the probe accepts a flag bit no kernel defines")
	}
}
