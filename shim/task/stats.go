package task

import (
	"context"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
)

// Stats reports the container's cgroup metrics, found from its init pid.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	pid := c.init.Pid()
	var metrics any
	if cgroups.Mode() == cgroups.Unified {
		group, err := cgroupsv2.PidGroupPath(pid)
		if err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "cgroup of container %s: %v", c.id, err)
		}
		m, err := cgroupsv2.Load(group)
		if err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "cgroup %s of container %s: %v", group, c.id, err)
		}
		if metrics, err = m.Stat(); err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "cgroup stats of container %s: %v", c.id, err)
		}
	} else {
		cg, err := cgroup1.Load(cgroup1.PidPath(pid))
		if err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "cgroup of container %s: %v", c.id, err)
		}
		if metrics, err = cg.Stat(cgroup1.IgnoreNotExist); err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "cgroup stats of container %s: %v", c.id, err)
		}
	}
	a, err := typeurl.MarshalAnyToProto(metrics)
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "failed to marshal stats of container %s: %v", c.id, err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}
