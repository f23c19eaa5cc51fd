package cgroups

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestV1ResourcesZeroIsUnset: the zeros runc's v1 driver skips are not
// written (nerdctl's realtime 0/0 made every nerdctl container fail with
// "write cpu.rt_period_us: invalid argument"), set values are kept, and
// the spec is not changed.
func TestV1ResourcesZeroIsUnset(t *testing.T) {
	zero64, zeroU, zero16 := int64(0), uint64(0), uint16(0)
	quota, shares, limit, weight := int64(20000), uint64(512), int64(64<<20), uint16(300)
	res := &specs.LinuxResources{
		CPU:     &specs.LinuxCPU{RealtimeRuntime: &zero64, RealtimePeriod: &zeroU, Shares: &shares, Quota: &quota, Period: &zeroU, Cpus: "0"},
		Memory:  &specs.LinuxMemory{Limit: &limit, Reservation: &zero64, Swap: &zero64},
		BlockIO: &specs.LinuxBlockIO{Weight: &weight, LeafWeight: &zero16},
	}
	got := v1Resources(res)
	if got.CPU.RealtimeRuntime != nil || got.CPU.RealtimePeriod != nil || got.CPU.Period != nil ||
		got.Memory.Reservation != nil || got.Memory.Swap != nil || got.BlockIO.LeafWeight != nil {
		t.Errorf("zeros kept: cpu %+v memory %+v blkio %+v", got.CPU, got.Memory, got.BlockIO)
	}
	if *got.CPU.Shares != 512 || *got.CPU.Quota != 20000 || got.CPU.Cpus != "0" || *got.Memory.Limit != limit || *got.BlockIO.Weight != 300 {
		t.Errorf("set values lost: cpu %+v memory %+v blkio %+v", got.CPU, got.Memory, got.BlockIO)
	}
	if res.CPU.RealtimePeriod == nil || res.Memory.Swap == nil {
		t.Error("the spec's resources were modified")
	}
	if v1Resources(nil) != nil {
		t.Error("nil resources")
	}
}
