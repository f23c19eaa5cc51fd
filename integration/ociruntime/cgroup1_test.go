package ociruntime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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

// bounded makes every runtime command of e give up after a minute, so that
// a runtime that hangs fails the test instead of the suite.
func (e *env) bounded() {
	e.inside = func(name string, args ...string) *exec.Cmd {
		return exec.Command("timeout", append([]string{"-s", "KILL", "60", name}, args...)...)
	}
}

// preparedCgroup makes the container's cgroup before the container, in the
// freezer hierarchy on v1, and returns its directory. The test's cleanup
// thaws it, kills what a hung runtime left in it and removes it.
func preparedCgroup(t *testing.T, e *env) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup", e.spec.Linux.CgroupsPath)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		dir = e.v1Dir("freezer")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		setFrozen(t, dir, false)
		for i := 0; i < 100; i++ {
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if len(strings.Fields(string(procs))) == 0 {
				break
			}
			for _, p := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(p); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.cleanup()
	})
	return dir
}

func setFrozen(t *testing.T, dir string, frozen bool) {
	t.Helper()
	file, value := "cgroup.freeze", map[bool]string{true: "1", false: "0"}[frozen]
	if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
		file, value = "freezer.state", map[bool]string{true: "FROZEN", false: "THAWED"}[frozen]
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil && frozen {
		t.Fatal(err)
	}
}

// A container whose cgroup is frozen before it is created is refused with
// runc's error: its init would never run, and create hung for ever (issue
// 12, item 10). The cgroup is not the runtime's to change: it stays frozen.
func TestCgroupFrozenBeforeCreate(t *testing.T) {
	e := newEnv(t, "true")
	e.bounded()
	dir := preparedCgroup(t, e)
	setFrozen(t, dir, true)
	if _, err := e.create(); err == nil {
		t.Fatal("create in a frozen cgroup succeeded")
	}
	if msg := e.lastError(); !strings.Contains(msg, "container's cgroup unexpectedly frozen") {
		t.Errorf("logged error %q, want runc's \"container's cgroup unexpectedly frozen\"", msg)
	}
	if _, err := os.Stat(filepath.Join(e.root, e.id)); !os.IsNotExist(err) {
		t.Errorf("state of the refused container left (%v)", err)
	}
	if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(procs) != 0 {
		t.Errorf("processes %q were placed in the frozen cgroup", procs)
	}
}

// A cgroup that already has a process is refused with runc's error, and the
// process, which is not the container's, is left alone (delete of the
// container would have killed it).
func TestCgroupInUseBeforeCreate(t *testing.T) {
	e := newEnv(t, "true")
	e.bounded()
	dir := preparedCgroup(t, e)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		dir = e.v1Dir("devices") // where runc looks for processes on v1
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	other := exec.Command("sleep", "1000")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(other.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(); err == nil {
		t.Fatal("create in a cgroup with a process succeeded")
	}
	if msg := e.lastError(); !strings.Contains(msg, "container's cgroup is not empty: 1 process(es) found") {
		t.Errorf("logged error %q, want runc's \"container's cgroup is not empty\"", msg)
	}
	if err := other.Process.Signal(unix.Signal(0)); err != nil {
		t.Errorf("the cgroup's own process is gone after the refused create: %v", err)
	}
	_ = other.Process.Kill()
	_ = other.Wait()
	_ = os.Remove(dir)
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
		// lifts the limit. Set by update: the init's runtime may still
		// start threads until it execs, which a limit of 1 refuses.
		e := startV1(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(100))}})
		e.writeUpdate(`{"pids":{"limit":0}}`)
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

// cpusAllowed is the Cpus_allowed_list line of a /proc status file.
func cpusAllowed(t *testing.T, status string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list in %q", status)
	return ""
}

// A runtime run by a caller pinned to one CPU (taskset) does not pin the
// container: runc resets the affinity of the init and of exec'd processes,
// with --cgroup too, to what their cgroup allows (issue 12, item 12; issue
// 16, item 6).
func TestCPUAffinityReset(t *testing.T) {
	self, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	all := cpusAllowed(t, string(self))
	if !strings.ContainsAny(all, ",-") {
		t.Skipf("this test runs on CPUs %s: it needs two", all)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("no taskset")
	}
	e := newEnv(t, "sleep", "1000")
	e.inside = func(name string, args ...string) *exec.Cmd {
		return exec.Command("taskset", append([]string{"-c", "0", name}, args...)...)
	}
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	status, err := os.ReadFile("/proc/" + strconv.Itoa(e.state().Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if got := cpusAllowed(t, string(status)); got != all {
		t.Errorf("container init runs on CPUs %s, want %s (its cgroup's), not the caller's 0", got, all)
	}
	out, err := e.rt("exec", e.id, "cat", "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if got := cpusAllowed(t, out); got != all {
		t.Errorf("exec'd process runs on CPUs %s, want %s", got, all)
	}
	// exec --cgroup joins a sub-cgroup by another path (Paths.AddSub):
	// its process is reset all the same, as runc's.
	makeSubCgroups(t, e)
	out, err = e.rt("exec", "--cgroup", "sub", e.id, "cat", "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if got := cpusAllowed(t, out); got != all {
		t.Errorf("process exec'd with --cgroup sub runs on CPUs %s, want %s", got, all)
	}
}

// On a hybrid host the container's processes are in its cgroup in the v2
// hierarchy too, as runc places them (issue 12, item 13): systemd and
// cgroup v2 tools find them there, not in the caller's cgroup. Delete
// removes it (assertGone checks every hierarchy).
func TestHybridUnifiedHierarchy(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("not a hybrid cgroup host")
	}
	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	e.mustRT("exec", "--detach", "--pid-file", pidFile, e.id, "sleep", "1000")
	execPid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for what, pid := range map[string]string{"init": strconv.Itoa(e.state().Pid), "exec'd process": string(execPid)} {
		cg, err := os.ReadFile("/proc/" + pid + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cg), "\n0::"+e.spec.Linux.CgroupsPath+"\n") {
			t.Errorf("%s is not in %s in the v2 hierarchy:\n%s", what, e.spec.Linux.CgroupsPath, cg)
		}
	}
	e.mustRT("delete", "--force", e.id)
	e.assertGone()
}
