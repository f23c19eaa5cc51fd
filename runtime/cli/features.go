package cli

import (
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/hostnet-dev/hostnet/runtime/hooks"
	"github.com/hostnet-dev/hostnet/runtime/rootfs"
	"github.com/hostnet-dev/hostnet/runtime/seccomp"
	"github.com/hostnet-dev/hostnet/spec"
)

// runFeatures prints what this runtime implements, in the runtime-spec
// features format that containerd queries. Callers decide from it what to
// trust, so each list comes from the code that implements it, and what is
// not implemented says false (and is refused in a spec, see
// container.Validate) rather than being left out.
func runFeatures(_ *globals, args []string) error {
	if _, err := newFlags("features").parse(args, exactly(0)); err != nil {
		return err
	}
	yes, no := true, false
	idmap := rootfs.IDMapSupported()
	opts := rootfs.KnownMountOptions()
	sort.Strings(opts)
	return printJSON(features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: SpecVersion,
		Hooks:         hooks.Names,
		MountOptions:  opts,
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: spec.KnownCapabilities(),
			// rdma limits are written by containerd/cgroups, under both
			// drivers; a user-scoped systemd is not supported.
			Cgroup: &features.Cgroup{V1: &yes, V2: &yes, Systemd: &yes, SystemdUser: &no, Rdma: &yes},
			Seccomp: &features.Seccomp{
				Enabled:        &yes,
				Actions:        seccomp.KnownActions(),
				Operators:      seccomp.KnownOperators(),
				Archs:          seccomp.KnownArchs(),
				KnownFlags:     seccomp.KnownFlags(),
				SupportedFlags: seccomp.SupportedFlags(),
			},
			// Compiled in, as the format means it: a profile or label is
			// applied (initproc.applyLSM), or refused on a host without
			// the LSM.
			Apparmor:     &features.Apparmor{Enabled: &yes},
			Selinux:      &features.Selinux{Enabled: &yes},
			IntelRdt:     &features.IntelRdt{Enabled: &no},
			MemoryPolicy: &features.MemoryPolicy{},
			// Idmapped mounts need mount_setattr(2) (rootfs.IDMappedTree).
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &idmap}},
			NetDevices:      &features.NetDevices{Enabled: &no},
		},
		Annotations: map[string]string{"org.hostnet.runtime.version": Version},
	})
}
