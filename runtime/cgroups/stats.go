package cgroups

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Stats are returned in the shape `runc events --stats` prints, which is
// what go-runc (and so containerd's shims) parse.
type Stats = runc.Stats

func (c *v1) Update(res *specs.LinuxResources) error {
	if res != nil && len(res.Unified) > 0 {
		return errV1Unified
	}
	if err := checkControllers(c.paths, res); err != nil {
		return err
	}
	return setV1(c.paths, res, true)
}

func (c *v1) Stats() (*Stats, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("read cgroup stats: %w", err)
	}
	return fromV1(m), nil
}

func (c *v2) Update(res *specs.LinuxResources) error {
	if err := c.m.Update(v2Resources(res)); err != nil {
		return err
	}
	return setV2(filepath.Join(v2Root, c.path), res, true)
}

func (c *v2) Stats() (*Stats, error) {
	m, err := c.m.Stat()
	if err != nil {
		return nil, fmt.Errorf("read cgroup stats: %w", err)
	}
	return fromV2(m), nil
}

func memEntry(e *v1stats.MemoryEntry) runc.MemoryEntry {
	if e == nil {
		return runc.MemoryEntry{}
	}
	return runc.MemoryEntry{Limit: e.Limit, Usage: e.Usage, Max: e.Max, Failcnt: e.Failcnt}
}

func blkio(entries []*v1stats.BlkIOEntry) []runc.BlkioEntry {
	out := make([]runc.BlkioEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, runc.BlkioEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	return out
}

func fromV1(m *v1stats.Metrics) *Stats {
	s := &Stats{Hugetlb: map[string]runc.Hugetlb{}}
	if cpu := m.GetCPU(); cpu != nil {
		u, t := cpu.GetUsage(), cpu.GetThrottling()
		s.Cpu = runc.Cpu{
			Usage:      runc.CpuUsage{Total: u.GetTotal(), Percpu: u.GetPerCPU(), Kernel: u.GetKernel(), User: u.GetUser()},
			Throttling: runc.Throttling{Periods: t.GetPeriods(), ThrottledPeriods: t.GetThrottledPeriods(), ThrottledTime: t.GetThrottledTime()},
		}
	}
	if mem := m.GetMemory(); mem != nil {
		s.Memory = runc.Memory{
			Cache: mem.Cache, Usage: memEntry(mem.Usage), Swap: memEntry(mem.Swap),
			Kernel: memEntry(mem.Kernel), KernelTCP: memEntry(mem.KernelTCP),
			Raw: map[string]uint64{
				"cache": mem.Cache, "rss": mem.RSS, "rss_huge": mem.RSSHuge, "mapped_file": mem.MappedFile,
				"dirty": mem.Dirty, "writeback": mem.Writeback, "pgfault": mem.PgFault, "pgmajfault": mem.PgMajFault,
				"inactive_anon": mem.InactiveAnon, "active_anon": mem.ActiveAnon, "inactive_file": mem.InactiveFile,
				"active_file": mem.ActiveFile, "unevictable": mem.Unevictable,
				"hierarchical_memory_limit": mem.HierarchicalMemoryLimit, "total_rss": mem.TotalRSS, "total_cache": mem.TotalCache,
			},
		}
	}
	if p := m.GetPids(); p != nil {
		s.Pids = runc.Pids{Current: p.Current, Limit: p.Limit}
	}
	if b := m.GetBlkio(); b != nil {
		s.Blkio = runc.Blkio{
			IoServiceBytesRecursive: blkio(b.IoServiceBytesRecursive), IoServicedRecursive: blkio(b.IoServicedRecursive),
			IoQueuedRecursive: blkio(b.IoQueuedRecursive), IoServiceTimeRecursive: blkio(b.IoServiceTimeRecursive),
			IoWaitTimeRecursive: blkio(b.IoWaitTimeRecursive), IoMergedRecursive: blkio(b.IoMergedRecursive),
			IoTimeRecursive: blkio(b.IoTimeRecursive), SectorsRecursive: blkio(b.SectorsRecursive),
		}
	}
	for _, h := range m.GetHugetlb() {
		s.Hugetlb[h.Pagesize] = runc.Hugetlb{Usage: h.Usage, Max: h.Max, Failcnt: h.Failcnt}
	}
	return s
}

func fromV2(m *v2stats.Metrics) *Stats {
	s := &Stats{Hugetlb: map[string]runc.Hugetlb{}}
	if cpu := m.GetCPU(); cpu != nil {
		s.Cpu = runc.Cpu{
			Usage:      runc.CpuUsage{Total: cpu.UsageUsec * 1000, Kernel: cpu.SystemUsec * 1000, User: cpu.UserUsec * 1000},
			Throttling: runc.Throttling{Periods: cpu.NrPeriods, ThrottledPeriods: cpu.NrThrottled, ThrottledTime: cpu.ThrottledUsec * 1000},
		}
	}
	if mem := m.GetMemory(); mem != nil {
		s.Memory = runc.Memory{
			Cache: mem.File,
			Usage: runc.MemoryEntry{Limit: mem.UsageLimit, Usage: mem.Usage, Max: mem.MaxUsage},
			Swap:  runc.MemoryEntry{Limit: mem.SwapLimit, Usage: mem.SwapUsage, Max: mem.SwapMaxUsage},
			Raw: map[string]uint64{
				"anon": mem.Anon, "file": mem.File, "kernel_stack": mem.KernelStack, "slab": mem.Slab, "sock": mem.Sock,
				"shmem": mem.Shmem, "file_mapped": mem.FileMapped, "file_dirty": mem.FileDirty, "pgfault": mem.Pgfault,
				"pgmajfault": mem.Pgmajfault,
			},
		}
	}
	if p := m.GetPids(); p != nil {
		s.Pids = runc.Pids{Current: p.Current, Limit: p.Limit}
	}
	for _, e := range m.GetIo().GetUsage() {
		s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive,
			runc.BlkioEntry{Major: e.Major, Minor: e.Minor, Op: "Read", Value: e.Rbytes},
			runc.BlkioEntry{Major: e.Major, Minor: e.Minor, Op: "Write", Value: e.Wbytes})
		s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive,
			runc.BlkioEntry{Major: e.Major, Minor: e.Minor, Op: "Read", Value: e.Rios},
			runc.BlkioEntry{Major: e.Major, Minor: e.Minor, Op: "Write", Value: e.Wios})
	}
	for _, h := range m.GetHugetlb() {
		s.Hugetlb[h.Pagesize] = runc.Hugetlb{Usage: h.Current, Max: h.Max}
	}
	return s
}

func (c *v1) OOMKills() (uint64, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return 0, err
	}
	return m.GetMemoryOomControl().GetOomKill(), nil
}

func (c *v2) OOMKills() (uint64, error) {
	m, err := c.m.Stat()
	if err != nil {
		return 0, err
	}
	return m.GetMemoryEvents().GetOomKill(), nil
}
