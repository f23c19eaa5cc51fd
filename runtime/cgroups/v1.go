package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup1"
	ocgroups "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// On cgroup v1 the limits are written by runc's own controllers
// (opencontainers/cgroups/fs), which containerd/cgroups/v3 only
// approximates: runc skips a realtime period or runtime of 0 (nerdctl
// always sends them, and the kernel refuses a period of 0), orders the CFS
// period, quota and burst so that a parent's limit does not refuse them,
// sets cpu.idle and the burst, falls back to blkio.bfq.weight where
// blkio.weight is missing, writes a pids limit of 0 as 1 and -1 as "max",
// changes swap and memory in the order the kernel accepts, and writes
// device rules through its emulator, normalised ("rrwm" reaches the kernel
// as "rwm", not as the "rrw" it would read) and as the smallest change
// from what the cgroup allows now. containerd/cgroups still creates the
// directories, moves processes, freezes, reads stats and removes them.

// v1Controller is one of runc's v1 controllers that take limits.
type v1Controller struct {
	name string
	set  func(path string, r *ocgroups.Resources) error
}

// v1Controllers are runc's v1 controllers that take limits, in the order
// runc sets them. They are made for each use: the blkio controller
// remembers which weight file (blkio.weight or blkio.bfq.weight) the first
// cgroup it saw has.
func v1Controllers() []v1Controller {
	return []v1Controller{
		{"cpuset", (&fs.CpusetGroup{}).Set},
		{"devices", (&fs.DevicesGroup{}).Set},
		{"memory", (&fs.MemoryGroup{}).Set},
		{"cpu", (&fs.CpuGroup{}).Set},
		{"pids", (&fs.PidsGroup{}).Set},
		{"blkio", (&fs.BlkioGroup{}).Set},
		{"hugetlb", (&fs.HugetlbGroup{}).Set},
		{"net_cls", (&fs.NetClsGroup{}).Set},
		{"net_prio", (&fs.NetPrioGroup{}).Set},
		{"rdma", (&fs.RdmaGroup{}).Set},
	}
}

// setV1 writes res into every hierarchy of paths. On update the device
// rules are left as they are: a client sends them back with the other
// resources (containerd sends the whole set), and runc's update keeps the
// rules of create.
func setV1(paths Paths, res *specs.LinuxResources, update bool) error {
	r, err := v1Resources(res)
	if err != nil {
		return err
	}
	r.SkipDevices = update
	if _, ok := paths["devices"]; !ok && !update {
		// runc's stance: without it the container could open any device.
		return errors.New("the devices cgroup controller is not mounted on this host")
	}
	for _, c := range v1Controllers() {
		p, ok := paths[c.name]
		if !ok {
			continue // checkControllers refused limits it cannot set
		}
		dir := filepath.Join(mountPoint(c.name), p)
		if err := c.set(dir, r); err != nil {
			return fmt.Errorf("set %s limits of cgroup %s: %w", c.name, dir, err)
		}
	}
	return nil
}

// v1Resources converts the spec's resources as runc does
// (libcontainer/specconv.CreateCgroupConfig in runc 1.5.2).
func v1Resources(res *specs.LinuxResources) (*ocgroups.Resources, error) {
	r := &ocgroups.Resources{}
	if res == nil {
		return r, nil
	}
	devs, err := deviceRules(res.Devices)
	if err != nil {
		return nil, err
	}
	r.Devices = devs
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			r.Memory = *m.Limit
		}
		if m.Reservation != nil {
			r.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			r.MemorySwap = *m.Swap
		}
		r.MemorySwappiness = m.Swappiness
		if m.DisableOOMKiller != nil {
			r.OomKillDisable = *m.DisableOOMKiller
		}
		if m.CheckBeforeUpdate != nil {
			r.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil {
			r.CpuShares = *c.Shares
		}
		if c.Quota != nil {
			r.CpuQuota = *c.Quota
		}
		if c.Period != nil {
			r.CpuPeriod = *c.Period
		}
		r.CpuBurst = c.Burst
		if c.RealtimeRuntime != nil {
			r.CpuRtRuntime = *c.RealtimeRuntime
		}
		if c.RealtimePeriod != nil {
			r.CpuRtPeriod = *c.RealtimePeriod
		}
		r.CpusetCpus, r.CpusetMems = c.Cpus, c.Mems
		r.CPUIdle = c.Idle
	}
	if res.Pids != nil {
		r.PidsLimit = res.Pids.Limit
	}
	if b := res.BlockIO; b != nil {
		if b.Weight != nil {
			r.BlkioWeight = *b.Weight
		}
		if b.LeafWeight != nil {
			r.BlkioLeafWeight = *b.LeafWeight
		}
		for _, wd := range b.WeightDevice {
			var weight, leaf uint16
			if wd.Weight != nil {
				weight = *wd.Weight
			}
			if wd.LeafWeight != nil {
				leaf = *wd.LeafWeight
			}
			r.BlkioWeightDevice = append(r.BlkioWeightDevice, ocgroups.NewWeightDevice(wd.Major, wd.Minor, weight, leaf))
		}
		throttle := func(in []specs.LinuxThrottleDevice) []*ocgroups.ThrottleDevice {
			var out []*ocgroups.ThrottleDevice
			for _, td := range in {
				out = append(out, ocgroups.NewThrottleDevice(td.Major, td.Minor, td.Rate))
			}
			return out
		}
		r.BlkioThrottleReadBpsDevice = throttle(b.ThrottleReadBpsDevice)
		r.BlkioThrottleWriteBpsDevice = throttle(b.ThrottleWriteBpsDevice)
		r.BlkioThrottleReadIOPSDevice = throttle(b.ThrottleReadIOPSDevice)
		r.BlkioThrottleWriteIOPSDevice = throttle(b.ThrottleWriteIOPSDevice)
	}
	for _, l := range res.HugepageLimits {
		r.HugetlbLimit = append(r.HugetlbLimit, &ocgroups.HugepageLimit{Pagesize: l.Pagesize, Limit: l.Limit})
	}
	if len(res.Rdma) > 0 {
		r.Rdma = make(map[string]ocgroups.LinuxRdma, len(res.Rdma))
		for k, v := range res.Rdma {
			r.Rdma[k] = ocgroups.LinuxRdma{HcaHandles: v.HcaHandles, HcaObjects: v.HcaObjects}
		}
	}
	if n := res.Network; n != nil {
		if n.ClassID != nil {
			r.NetClsClassid = *n.ClassID
		}
		for _, p := range n.Priorities {
			r.NetPrioIfpriomap = append(r.NetPrioIfpriomap, &ocgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	r.Unified = maps.Clone(res.Unified)
	return r, nil
}

type v1 struct {
	cg    cgroup1.Cgroup
	paths Paths
}

func (c *v1) Add(pid int) error {
	if err := c.cg.Add(cgroup1.Process{Pid: pid}); err != nil {
		return err
	}
	return joinUnified(c.paths, pid)
}

// Pids lists the processes in the cgroup and below it, read in the
// freezer hierarchy (the processes pause freezes) or, without one, in the
// devices hierarchy, where runc reads them.
func (c *v1) Pids() ([]int, error) {
	name := "devices"
	if _, ok := c.paths["freezer"]; ok {
		name = "freezer"
	}
	p, ok := c.paths[name]
	if !ok {
		return nil, fmt.Errorf("no %s cgroup: %w", name, cgroup1.ErrControllerNotActive)
	}
	return treePids(filepath.Join(mountPoint(name), p), ocgroups.GetPids)
}

// Freeze uses runc's v1 freezer (opencontainers/cgroups/fs), which retries
// and thaws in between while the cgroup stays FREEZING: a task in the middle
// of execve (an init exec'ing the user's program, an exec starting) cannot
// be frozen until it finishes, and containerd/cgroups' Freeze then waits for
// FROZEN forever. After its retries it thaws and fails instead of hanging.
func (c *v1) Freeze() error {
	p, err := c.paths.v1Path(cgroup1.Freezer)
	if err != nil {
		return fmt.Errorf("freeze: no freezer cgroup: %w", err)
	}
	return (&fs.FreezerGroup{}).Set(filepath.Join(mountPoint("freezer"), p), &ocgroups.Resources{Freezer: ocgroups.Frozen})
}

func (c *v1) Thaw() error  { return c.cg.Thaw() }
func (c *v1) Frozen() bool { return c.cg.State() == cgroup1.Frozen }

// Delete kills what is left in the cgroup and removes it, with any
// cgroups the container made below it, in every hierarchy, as runc's
// Destroy does (removeTree): a cgroup that is already gone is not an
// error.
func (c *v1) Delete() error {
	if err := drain(c); err != nil {
		return err
	}
	var errs []error
	for _, dir := range c.MountPaths() {
		// removeTree's errors name the directory (rmdir PATH: ...).
		errs = append(errs, removeTree(dir))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return removeUnified(c.paths)
}

type pather interface{ Path(string) string }

func (c *v1) MountPaths() map[string]string {
	paths := map[string]string{}
	for _, s := range c.cg.Subsystems() {
		if p, ok := s.(pather); ok {
			// Path("/") is the hierarchy's mount point, named like the
			// directory the container expects under /sys/fs/cgroup.
			path, err := c.paths.v1Path(s.Name())
			if err != nil {
				continue
			}
			paths[filepath.Base(p.Path("/"))] = p.Path(path)
		}
	}
	return paths
}

// joinUnified places pid in the container's cgroup in the v2 hierarchy of
// a hybrid host, where Resolve and ResolveUnit put one, as runc does: it
// is where systemd and cgroup-aware tools look for a process, and systemd
// would otherwise count the container's processes in the caller's unit.
// No limit is set there.
func joinUnified(paths Paths, pid int) error {
	p, ok := paths[unifiedKey]
	if !ok {
		return nil
	}
	dir := filepath.Join(hierarchyRoot(unifiedKey), p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if err := ocgroups.WriteCgroupProc(dir, pid); err != nil {
		return fmt.Errorf("join %d to cgroup %s: %w", pid, dir, err)
	}
	return nil
}

// removeUnified removes the container's cgroup in the v2 hierarchy of a
// hybrid host, with any cgroups the container made below it.
func removeUnified(paths Paths) error {
	p, ok := paths[unifiedKey]
	if !ok {
		return nil
	}
	dir := filepath.Join(hierarchyRoot(unifiedKey), p)
	if err := removeTree(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}
