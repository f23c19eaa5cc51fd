// Package shimcgroup moves the shim server into the cgroup named by the
// ShimCgroup field of runc's runtime options, as containerd's runc shim
// does: operators use it to account the shims' memory and CPU to a cgroup
// of their choice (e.g. the pod's) rather than containerd's.
package shimcgroup

import (
	"fmt"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
)

// Join moves process pid, the shim server just started, into the cgroup the
// runtime options in params name, if they are runc's and name one. The
// options are containerd's, sent with `shim start`.
func Join(params *bootapi.BootstrapParams, pid int) error {
	var opts options.Options
	found, err := params.FindExtension(&opts)
	if err != nil {
		return fmt.Errorf("failed to read runtime options: %w", err)
	}
	if !found || opts.ShimCgroup == "" {
		return nil
	}
	return joinCgroup(opts.ShimCgroup, pid)
}

// joinCgroup moves pid into the cgroup at path, relative to the cgroup
// root: in the unified hierarchy, or in each v1 hierarchy that has it.
func joinCgroup(path string, pid int) error {
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroupsv2.Load(path)
		if err != nil {
			return fmt.Errorf("failed to load shim cgroup %s: %w", path, err)
		}
		if err := m.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("failed to join shim cgroup %s: %w", path, err)
		}
		return nil
	}
	// Fails if the cgroup exists in no hierarchy.
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return fmt.Errorf("failed to load shim cgroup %s: %w", path, err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("failed to join shim cgroup %s: %w", path, err)
	}
	return nil
}
