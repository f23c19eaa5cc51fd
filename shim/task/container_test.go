package task

import (
	"context"
	"testing"

	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/bundle"
)

// TestKillAllOnExit: the shim decides as the runc shim does, on the spec it
// parsed, including a spec without a linux section (which the shim used to
// take for a pid namespace of its own).
func TestKillAllOnExit(t *testing.T) {
	for name, s := range map[string]*specs.Spec{
		"own pid namespace":    {Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}},
		"joined pid namespace": {Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}}}},
		"no pid namespace":     {Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}}},
		"no linux section":     {},
	} {
		b := bundle.New(t.TempDir())
		if err := b.WriteSpec(s); err != nil {
			t.Fatal(err)
		}
		if got, want := killAllOnExit(s), runcshim.ShouldKillAllOnExit(context.Background(), b.Path); got != want {
			t.Errorf("%s: killAllOnExit = %v, the runc shim's %v", name, got, want)
		}
	}
}
