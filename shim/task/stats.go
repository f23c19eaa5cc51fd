package task

import (
	"context"
	"fmt"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
)

// loadCgroup loads the cgroup the process pid is in: a cgroup1.Cgroup or a
// *cgroupsv2.Manager.
func loadCgroup(pid int) (any, error) {
	if cgroups.Mode() == cgroups.Unified {
		group, err := cgroupsv2.PidGroupPath(pid)
		if err != nil {
			return nil, fmt.Errorf("failed to find cgroup of pid %d: %w", pid, err)
		}
		m, err := cgroupsv2.Load(group)
		if err != nil {
			return nil, fmt.Errorf("failed to load cgroup %s: %w", group, err)
		}
		return m, nil
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return nil, fmt.Errorf("failed to load cgroups of pid %d: %w", pid, err)
	}
	return cg, nil
}

// Stats reports the container's cgroup metrics. The cgroup was loaded at
// create, so an exited container that is not deleted yet, whose cgroup the
// runtime keeps until then, still reports its final statistics: containerd's
// CRI reads them after the exit to tell an OOM kill, as from the runc shim.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var metrics any
	switch cg := c.cgroup.(type) {
	case cgroup1.Cgroup:
		if metrics, err = cg.Stat(cgroup1.IgnoreNotExist); err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "cgroup stats of container %s: %v", c.id, err)
		}
	case *cgroupsv2.Manager:
		if metrics, err = cg.Stat(); err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "cgroup stats of container %s: %v", c.id, err)
		}
	default:
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s has no cgroup the shim could load", c.id)
	}
	a, err := typeurl.MarshalAnyToProto(metrics)
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "failed to marshal stats of container %s: %v", c.id, err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}
