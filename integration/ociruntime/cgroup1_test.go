package ociruntime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// requireV1 skips a test of cgroup v1 behaviour on a cgroup v2 host.
func requireV1(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("needs a cgroup v1 host")
	}
}

// v1Dir is the container's cgroup directory in one v1 hierarchy.
func (e *env) v1Dir(hierarchy string) string {
	return filepath.Join("/sys/fs/cgroup", hierarchy, e.spec.Linux.CgroupsPath)
}

// startV1 creates and starts `sleep` with res on a cgroup v1 host.
func startV1(t *testing.T, res *specs.LinuxResources) *env {
	t.Helper()
	requireV1(t)
	e := newEnv(t, "sleep", "1000")
	res.Devices = e.spec.Linux.Resources.Devices
	e.spec.Linux.Resources = res
	if _, err := e.create(); err != nil {
		t.Fatalf("%v (log: %s)", err, e.lastError())
	}
	e.mustRT("start", e.id)
	return e
}

// The details of cgroup v1 limits that runc gets right and clients rely on
// (issue 12, item 11); each is what runc 1.5.2 writes.
func TestCgroupV1Limits(t *testing.T) {
	t.Run("realtime-zero", func(t *testing.T) {
		// nerdctl sends a realtime period and runtime of 0: runc skips
		// them (the kernel refuses a period of 0).
		e := startV1(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: ptr(uint64(0)), RealtimeRuntime: ptr(int64(0))}})
		if got := readFile(t, e.v1Dir("cpu"), "cpu.rt_runtime_us"); got != "0" {
			t.Errorf("cpu.rt_runtime_us = %s, want 0", got)
		}
	})
	t.Run("blkio-weight", func(t *testing.T) {
		e := startV1(t, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(300))}})
		// blkio.weight is CFQ's, gone since Linux 5.0; BFQ's takes it.
		file := "blkio.weight"
		if _, err := os.Stat(filepath.Join(e.v1Dir("blkio"), file)); err != nil {
			file = "blkio.bfq.weight"
		}
		if got := readFile(t, e.v1Dir("blkio"), file); got != "300" {
			t.Errorf("%s = %s, want 300", file, got)
		}
	})
	t.Run("pids-zero", func(t *testing.T) {
		// runc writes 1 for 0 (what systemd's TasksMax takes), and -1
		// lifts the limit.
		e := startV1(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(0))}})
		if got := readFile(t, e.v1Dir("pids"), "pids.max"); got != "1" {
			t.Errorf("pids.max = %s for a limit of 0, want 1", got)
		}
		e.writeUpdate(`{"pids":{"limit":-1}}`)
		if got := readFile(t, e.v1Dir("pids"), "pids.max"); got != "max" {
			t.Errorf("pids.max = %s after an update to -1, want max", got)
		}
	})
	t.Run("cpu-idle-burst", func(t *testing.T) {
		e := startV1(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(1)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Burst: ptr(uint64(20000))}})
		for file, want := range map[string]string{"cpu.idle": "1", "cpu.cfs_quota_us": "50000", "cpu.cfs_burst_us": "20000"} {
			if got := readFile(t, e.v1Dir("cpu"), file); got != want {
				t.Errorf("%s = %s, want %s", file, got, want)
			}
		}
	})
	t.Run("device-access", func(t *testing.T) {
		// The kernel reads three letters and refuses others: runc keeps
		// r, w and m, in order ("rrwm" reached the kernel as "rrw" and
		// lost m; "rwa" was refused).
		rule := func(minor int64, access string) specs.LinuxDeviceCgroup {
			return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(4)), Minor: ptr(minor), Access: access}
		}
		requireV1(t)
		e := newEnv(t, "sleep", "1000")
		e.spec.Linux.Resources.Devices = append(e.spec.Linux.Resources.Devices, rule(64, "rrwm"), rule(65, "rwa"), rule(66, "mr"))
		if _, err := e.create(); err != nil {
			t.Fatalf("%v (log: %s)", err, e.lastError())
		}
		list := readFile(t, e.v1Dir("devices"), "devices.list")
		for _, want := range []string{"c 4:64 rwm", "c 4:65 rw", "c 4:66 rm"} {
			if !strings.Contains("\n"+list+"\n", "\n"+want+"\n") {
				t.Errorf("devices.list has no %q:\n%s", want, list)
			}
		}
	})
}

// Setting a CFS period and quota under a parent with a limit: the kernel
// checks each write against the parent, and runc writes them in the order
// it accepts (the period first failed: old quota / new period exceeded
// the parent's limit).
func TestCgroupV1QuotaUnderParentLimit(t *testing.T) {
	requireV1(t)
	e := newEnv(t, "sleep", "1000")
	parent := e.spec.Linux.CgroupsPath
	e.spec.Linux.CgroupsPath = parent + "/ctr"
	parentDir := filepath.Join("/sys/fs/cgroup/cpu", parent)
	if err := os.MkdirAll(parentDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.cleanup()
		for _, d := range cgroupDirs(parent) {
			_ = os.Remove(d)
		}
		e.cleanup()
	})
	for file, v := range map[string]string{"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"} {
		if err := os.WriteFile(filepath.Join(parentDir, file), []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	e.spec.Linux.Resources.CPU = &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000))}
	if _, err := e.create(); err != nil {
		t.Fatalf("%v (log: %s)", err, e.lastError())
	}
	e.writeUpdate(`{"cpu":{"quota":5000,"period":10000}}`)
	for file, want := range map[string]string{"cpu.cfs_period_us": "10000", "cpu.cfs_quota_us": "5000"} {
		if got := readFile(t, e.v1Dir("cpu"), file); got != want {
			t.Errorf("%s = %s after update, want %s", file, got, want)
		}
	}
}
