package seccomp

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestFeatureListsCompile ties what `hostnet-runc features` reports to
// Compile: every listed action, operator, architecture and flag compiles
// (SCMP_ACT_NOTIFY and WAIT_KILLABLE_RECV with the listenerPath they need),
// and runc's list of actions and flags is ours.
func TestFeatureListsCompile(t *testing.T) {
	const agent = "/run/agent.sock"
	for _, a := range KnownActions() {
		act := specs.LinuxSeccompAction(a)
		if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: agent, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: act}}}); err != nil {
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
	notify := []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}
	for _, f := range KnownFlags() {
		if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: agent, Syscalls: notify, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlag(f)}}); err != nil {
			t.Errorf("listed flag %s: %v", f, err)
		}
	}
	// runc 1.5.2's lists (`runc features`).
	runcActions := []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}
	if got := KnownActions(); !slices.Equal(got, runcActions) {
		t.Errorf("actions %v, runc's %v", got, runcActions)
	}
	runcFlags := []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}
	if got := KnownFlags(); !slices.Equal(got, runcFlags) {
		t.Errorf("flags %v, runc's %v", got, runcFlags)
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
