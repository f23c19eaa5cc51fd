package cli

import (
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
	"github.com/hostnet-dev/hostnet/runtime/rootfs"
)

// runFeatures prints what this runtime implements, in the runtime-spec
// features format that containerd queries.
func runFeatures(*globals, []string) error {
	yes, no := true, false
	opts := rootfs.KnownMountOptions()
	sort.Strings(opts)
	return printJSON(features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: SpecVersion,
		Hooks:         []string{},
		MountOptions:  opts,
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: initproc.KnownCapabilities(),
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no},
			Seccomp:      &features.Seccomp{Enabled: &no},
			Apparmor:     &features.Apparmor{Enabled: &no},
			Selinux:      &features.Selinux{Enabled: &no},
		},
		Annotations: map[string]string{"org.hostnet.runtime.version": Version},
	})
}
