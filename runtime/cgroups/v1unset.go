package cgroups

import specs "github.com/opencontainers/runtime-spec/specs-go"

// v1Resources is res with the zero values runc's cgroup v1 driver takes as
// "not set" removed: containerd/cgroups writes every value a spec points
// at, and a 0 written to cpu.rt_period_us, cpu.cfs_quota_us or
// memory.limit_in_bytes is refused by the kernel or limits the container
// to nothing. nerdctl, for one, always sets cpu.realtimePeriod and
// realtimeRuntime to 0. res is not modified.
func v1Resources(res *specs.LinuxResources) *specs.LinuxResources {
	if res == nil {
		return nil
	}
	out := *res
	if c := res.CPU; c != nil {
		cpu := *c
		cpu.Shares = nonZero(cpu.Shares)
		cpu.Quota = nonZero(cpu.Quota)
		cpu.Period = nonZero(cpu.Period)
		cpu.RealtimeRuntime = nonZero(cpu.RealtimeRuntime)
		cpu.RealtimePeriod = nonZero(cpu.RealtimePeriod)
		out.CPU = &cpu
	}
	if m := res.Memory; m != nil {
		mem := *m
		mem.Limit = nonZero(mem.Limit)
		mem.Reservation = nonZero(mem.Reservation)
		mem.Swap = nonZero(mem.Swap)
		mem.Kernel = nonZero(mem.Kernel)
		mem.KernelTCP = nonZero(mem.KernelTCP)
		out.Memory = &mem
	}
	if b := res.BlockIO; b != nil {
		blkio := *b
		blkio.Weight = nonZero(blkio.Weight)
		blkio.LeafWeight = nonZero(blkio.LeafWeight)
		out.BlockIO = &blkio
	}
	return &out
}

func nonZero[T int64 | uint64 | uint16](p *T) *T {
	if p == nil || *p == 0 {
		return nil
	}
	return p
}
