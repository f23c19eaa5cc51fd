package task

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
)

// containerCgroup is the container's cgroup, loaded once, at create, from
// the init's pid: the metrics and the OOM watch both use it. It still holds
// the container's statistics once the init has exited, when the init's pid
// no longer leads to it.
type containerCgroup struct {
	// cg is a cgroup1.Cgroup or a *cgroupsv2.Manager.
	cg any
	// oomCounter holds the kernel's count of OOM kills in the memory
	// cgroup: memory.oom_control (v1) or memory.events (v2). Empty if
	// the memory controller is not there.
	oomCounter string
}

// loadCgroup loads the cgroup the process pid is in.
func loadCgroup(pid int) (*containerCgroup, error) {
	if cgroups.Mode() == cgroups.Unified {
		group, err := cgroupsv2.PidGroupPath(pid)
		if err != nil {
			return nil, fmt.Errorf("failed to find cgroup of pid %d: %w", pid, err)
		}
		m, err := cgroupsv2.Load(group)
		if err != nil {
			return nil, fmt.Errorf("failed to load cgroup %s: %w", group, err)
		}
		return &containerCgroup{cg: m, oomCounter: filepath.Join("/sys/fs/cgroup", group, "memory.events")}, nil
	}
	path := cgroup1.PidPath(pid)
	cg, err := cgroup1.Load(path)
	if err != nil {
		return nil, fmt.Errorf("failed to load cgroups of pid %d: %w", pid, err)
	}
	c := &containerCgroup{cg: cg}
	if dir, err := memoryDir(cg, path); err == nil {
		c.oomCounter = filepath.Join(dir, "memory.oom_control")
	}
	return c, nil
}

func memoryDir(cg cgroup1.Cgroup, path cgroup1.Path) (string, error) {
	rel, err := path(cgroup1.Memory)
	if err != nil {
		return "", fmt.Errorf("failed to find memory cgroup: %w", err)
	}
	for _, s := range cg.Subsystems() {
		if p, ok := s.(interface{ Path(string) string }); ok && s.Name() == cgroup1.Memory {
			return p.Path(rel), nil
		}
	}
	return "", errors.New("memory cgroup controller is not mounted")
}

// oomEventFD returns an eventfd that the kernel signals on memory events
// (v2) or OOM (v1) in the cgroup.
func (c *containerCgroup) oomEventFD() (int, error) {
	if c.oomCounter == "" {
		return -1, errors.New("memory cgroup controller is not mounted")
	}
	switch cg := c.cg.(type) {
	case cgroup1.Cgroup:
		fd, err := cg.OOMEventFD()
		return int(fd), err
	case *cgroupsv2.Manager:
		fd, _, err := cg.MemoryEventFD()
		return fd, err
	}
	return -1, fmt.Errorf("unknown cgroup %T", c.cg)
}

// stats reads the cgroup's metrics: *v1.Metrics or *v2.Metrics.
func (c *containerCgroup) stats() (any, error) {
	switch cg := c.cg.(type) {
	case cgroup1.Cgroup:
		return cg.Stat(cgroup1.IgnoreNotExist)
	case *cgroupsv2.Manager:
		return cg.Stat()
	}
	return nil, fmt.Errorf("unknown cgroup %T", c.cg)
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
	if c.cgroup == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s has no cgroup the shim could load", c.id)
	}
	metrics, err := c.cgroup.stats()
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "cgroup stats of container %s: %v", c.id, err)
	}
	a, err := typeurl.MarshalAnyToProto(metrics)
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "failed to marshal stats of container %s: %v", c.id, err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}
