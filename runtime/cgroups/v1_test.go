package cgroups

import (
	"os"
	"path/filepath"
	"testing"

	ocgroups "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeV1 is a directory per v1 hierarchy holding the given files, each
// with the content "unset", so a write of a value that must be skipped
// shows. runc's controllers are told (their TestMode) to accept files
// that are not on cgroupfs.
func fakeV1(t *testing.T, files ...string) string {
	t.Helper()
	ocgroups.TestMode = true
	t.Cleanup(func() { ocgroups.TestMode = false })
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("unset"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// setFake writes res into the fake hierarchies under root as setV1 writes
// a cgroup (device rules aside, which need a real devices.list).
func setFake(t *testing.T, root string, res *specs.LinuxResources) error {
	t.Helper()
	r, err := v1Resources(res)
	if err != nil {
		t.Fatal(err)
	}
	r.SkipDevices = true
	for _, c := range v1Controllers() {
		dir := filepath.Join(root, c.name)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := c.set(dir, r); err != nil {
			return err
		}
	}
	return nil
}

func expectFiles(t *testing.T, root string, want map[string]string) {
	t.Helper()
	for f, v := range want {
		got, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Error(err)
		} else if string(got) != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
}

// TestV1ZeroIsUnset: the zeros runc's v1 controllers take as "not set" are
// not written (nerdctl's realtime 0/0 made every nerdctl container fail
// with "write cpu.rt_period_us: invalid argument"; a memory limit of 0
// would limit the container to nothing), set values are written, and the
// spec is not changed.
func TestV1ZeroIsUnset(t *testing.T) {
	zero64, zeroU, zero16 := int64(0), uint64(0), uint16(0)
	quota, shares, limit, weight := int64(20000), uint64(512), int64(64<<20), uint16(300)
	res := &specs.LinuxResources{
		CPU:     &specs.LinuxCPU{RealtimeRuntime: &zero64, RealtimePeriod: &zeroU, Shares: &shares, Quota: &quota, Period: &zeroU},
		Memory:  &specs.LinuxMemory{Limit: &limit, Reservation: &zero64, Swap: &zero64, Kernel: &zero64}, //nolint:staticcheck // clients still send it; zero must read as unset
		BlockIO: &specs.LinuxBlockIO{Weight: &weight, LeafWeight: &zero16},
	}
	files := map[string]string{
		"cpu/cpu.rt_runtime_us": "unset", "cpu/cpu.rt_period_us": "unset", "cpu/cpu.cfs_period_us": "unset",
		"cpu/cpu.shares": "512", "cpu/cpu.cfs_quota_us": "20000",
		"memory/memory.soft_limit_in_bytes": "unset", "memory/memory.memsw.limit_in_bytes": "unset",
		"memory/memory.kmem.limit_in_bytes": "unset", "memory/memory.limit_in_bytes": "67108864",
		"blkio/blkio.leaf_weight": "unset", "blkio/blkio.weight": "300",
	}
	var names []string
	for f := range files {
		names = append(names, f)
	}
	root := fakeV1(t, names...)
	if err := setFake(t, root, res); err != nil {
		t.Fatal(err)
	}
	expectFiles(t, root, files)
	if res.CPU.RealtimePeriod == nil || res.Memory.Swap == nil || *res.CPU.Quota != quota {
		t.Error("the spec's resources were modified")
	}
}

// TestV1BlkioWeightBFQ: without CFQ's blkio.weight (gone since Linux 5.0)
// the weight goes to BFQ's blkio.bfq.weight, as runc writes it; each
// cgroup is looked at anew.
func TestV1BlkioWeightBFQ(t *testing.T) {
	res := &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptrTo(uint16(300))}}
	cfq := fakeV1(t, "blkio/blkio.weight")
	if err := setFake(t, cfq, res); err != nil {
		t.Fatal(err)
	}
	expectFiles(t, cfq, map[string]string{"blkio/blkio.weight": "300"})
	bfq := fakeV1(t, "blkio/blkio.bfq.weight")
	if err := setFake(t, bfq, res); err != nil {
		t.Fatal(err)
	}
	expectFiles(t, bfq, map[string]string{"blkio/blkio.bfq.weight": "300"})
}

func ptrTo[T any](v T) *T { return &v }
