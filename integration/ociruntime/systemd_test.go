package ociruntime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/integration/internal/systemdbox"
)

// systemdEnv is a test env whose runtime commands run with --systemd-cgroup
// inside a sandbox booted by a real systemd.
func systemdEnv(t *testing.T, args ...string) (*env, *systemdbox.Box) {
	t.Helper()
	e := newEnv(t, args...)
	binds := map[string]bool{filepath.Dir(e.root): true, filepath.Dir(runtimeBin): true, rootfsDir: true}
	var dirs []string
	for d := range binds {
		dirs = append(dirs, d)
	}
	box := systemdbox.Start(t, dirs...)
	e.inside = box.Command
	e.global = []string{"--systemd-cgroup"}
	e.spec.Linux.CgroupsPath = "system.slice:hostnet-test:" + e.id
	return e, box
}

// TestSystemdCgroupDriver runs a container with --systemd-cgroup under a real
// systemd: the cgroup is a transient scope in the slice the path names, the
// limits are unit properties and cgroupfs values that survive a
// daemon-reload, update changes both, and delete leaves no unit or cgroup.
func TestSystemdCgroupDriver(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("reads cgroup v1 files; TestCgroupV2SystemdDriver is its cgroup v2 version")
	}
	e, box := systemdEnv(t, "sleep", "1000")
	mem, shares, pids := int64(64<<20), uint64(512), int64(64)
	e.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	e.spec.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares}
	e.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	if _, err := e.create(); err != nil {
		t.Fatalf("%v (log: %s)", err, e.lastError())
	}
	e.mustRT("start", e.id)
	e.waitStatus(specs.StateRunning)
	pid := e.state().Pid

	unit := "hostnet-test-" + e.id + ".scope"
	cgPath := "/system.slice/" + unit
	got := box.Show(unit, "ActiveState", "ControlGroup", "Slice", "Delegate", "MemoryLimit", "TasksMax", "CPUShares", "DevicePolicy")
	want := map[string]string{
		"ActiveState": "active", "ControlGroup": cgPath, "Slice": "system.slice", "Delegate": "yes",
		"MemoryLimit": strconv.FormatInt(mem, 10), "TasksMax": strconv.FormatInt(pids, 10),
		"CPUShares": strconv.FormatUint(shares, 10), "DevicePolicy": "strict",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("unit %s: %s=%q, want %q", unit, k, got[k], v)
		}
	}

	// The init sits in the unit's cgroup in every hierarchy, including the
	// ones systemd does not manage (freezer, cpuset), joined through cgroupfs.
	box.CheckCgroup(pid, cgPath)

	files := map[string]string{
		"memory/memory.limit_in_bytes": strconv.FormatInt(mem, 10),
		"pids/pids.max":                strconv.FormatInt(pids, 10),
		"cpu/cpu.shares":               strconv.FormatUint(shares, 10),
	}
	read := func(f string) string {
		return box.Run("cat", "/sys/fs/cgroup/"+filepath.Dir(f)+cgPath+"/"+filepath.Base(f))
	}
	devices := read("devices/devices.list")
	if strings.Contains(devices, "a *:* rwm") || !strings.Contains(devices, "c 1:3 rwm") {
		t.Errorf("devices.list of the container:\n%s\nwant the default allow list, not everything", devices)
	}
	check := func(when string) {
		t.Helper()
		for f, v := range files {
			if got := read(f); got != v {
				t.Errorf("%s: %s = %s, want %s", when, f, got, v)
			}
		}
		// As a set: systemd writes its rules in an order of its own.
		if got := read("devices/devices.list"); !sameLines(got, devices) {
			t.Errorf("%s: devices.list changed:\n%s\nwant\n%s", when, got, devices)
		}
	}
	check("after start")
	// systemd rewrites a unit's cgroup files from its properties on reload.
	box.Run("systemctl", "daemon-reload")
	check("after daemon-reload")

	e.mustRT("update", "--memory", "128m", e.id)
	files["memory/memory.limit_in_bytes"] = strconv.FormatInt(128<<20, 10)
	if got := box.Show(unit, "MemoryLimit")["MemoryLimit"]; got != files["memory/memory.limit_in_bytes"] {
		t.Errorf("after update: unit MemoryLimit=%s, want %s", got, files["memory/memory.limit_in_bytes"])
	}
	box.Run("systemctl", "daemon-reload")
	check("after update and daemon-reload")

	e.mustRT("pause", e.id)
	e.waitStatus(specs.ContainerState("paused"))
	e.mustRT("resume", e.id)
	e.waitStatus(specs.StateRunning)

	var ps []int
	if err := json.Unmarshal([]byte(e.mustRT("ps", "--format", "json", e.id)), &ps); err != nil || len(ps) != 1 || ps[0] != pid {
		t.Errorf("ps = %v (%v), want [%d]", ps, err, pid)
	}

	// A delegated container may make cgroups below its own, also in the
	// hierarchies systemd does not manage; delete removes them.
	box.Run("mkdir", "/sys/fs/cgroup/freezer"+cgPath+"/sub", "/sys/fs/cgroup/memory"+cgPath+"/sub")

	e.mustRT("kill", e.id, "KILL")
	e.waitStatus(specs.StateStopped)
	e.mustRT("delete", e.id)
	if st := box.Show(unit, "LoadState")["LoadState"]; st != "not-found" {
		t.Errorf("unit %s after delete: LoadState=%s, want not-found", unit, st)
	}
	if left := box.LeftCgroups(cgPath); left != "" {
		t.Errorf("cgroups left after delete:\n%s", left)
	}
	if _, err := os.Stat(filepath.Join(e.root, e.id)); !os.IsNotExist(err) {
		t.Errorf("state of %s left after delete (%v)", e.id, err)
	}
	// The unit's name is free again.
	if _, err := e.create(); err != nil {
		t.Fatalf("create again with the same unit: %v (log: %s)", err, e.lastError())
	}
	e.mustRT("delete", "--force", e.id)
	if left := box.LeftCgroups(cgPath); left != "" {
		t.Errorf("cgroups left after delete --force of a created container:\n%s", left)
	}
}

// TestSystemdCgroupErrors: a taken unit name or a malformed path is a clear
// error that leaves nothing behind and does not touch the other container.
func TestSystemdCgroupErrors(t *testing.T) {
	first, box := systemdEnv(t, "sleep", "1000")
	if _, err := first.create(); err != nil {
		t.Fatalf("%v (log: %s)", err, first.lastError())
	}
	unit := "hostnet-test-" + first.id + ".scope"

	// A second container in the same state root, asking for the same unit.
	second := *first
	second.id = first.id + "-2"
	second.bundle = filepath.Join(filepath.Dir(first.bundle), "bundle2")
	if err := os.MkdirAll(second.bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := second.create(); err == nil {
		t.Fatal("a second container got the same systemd unit")
	}
	// runc's refusal of a cgroup in use, before the unit is asked for.
	if msg := second.lastError(); !strings.Contains(msg, "container's cgroup is not empty: 1 process(es) found") {
		t.Errorf("logged error %q, want runc's \"container's cgroup is not empty\"", msg)
	}
	if _, err := os.Stat(filepath.Join(second.root, second.id)); !os.IsNotExist(err) {
		t.Errorf("state of the failed container left (%v)", err)
	}
	if got := box.Show(unit, "ActiveState")["ActiveState"]; got != "active" {
		t.Errorf("the first container's unit is %s after the failed create, want active", got)
	}
	if st := first.state(); st.Status != specs.StateCreated {
		t.Errorf("first container is %s, want created", st.Status)
	}

	for path, want := range map[string]string{
		"not-a-systemd-path":       `expected cgroupsPath to be of format "slice:prefix:name"`,
		"system:hostnet-test:x":    `invalid slice name "system"`,
		"bad--dash.slice:pfx:name": "empty component between dashes",
	} {
		second.spec.Linux.CgroupsPath = path
		if _, err := second.create(); err == nil {
			t.Errorf("cgroupsPath %q: create succeeded", path)
			continue
		}
		if msg := second.lastError(); !strings.Contains(msg, want) {
			t.Errorf("cgroupsPath %q: logged error %q, want it to contain %q", path, msg, want)
		}
		if _, err := os.Stat(filepath.Join(second.root, second.id)); !os.IsNotExist(err) {
			t.Errorf("cgroupsPath %q: state left (%v)", path, err)
		}
	}

	first.mustRT("delete", "--force", first.id)
	if st := box.Show(unit, "LoadState")["LoadState"]; st != "not-found" {
		t.Errorf("unit %s after delete --force of a created container: LoadState=%s", unit, st)
	}
}

// TestSystemdCgroupWithoutSystemd: on a host whose init is not systemd the
// driver refuses with a message that says so, and creates nothing.
func TestSystemdCgroupWithoutSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/private"); err == nil {
		t.Skip("this host runs systemd")
	}
	e := newEnv(t, "true")
	e.global = []string{"--systemd-cgroup"}
	e.spec.Linux.CgroupsPath = "system.slice:hostnet-test:" + e.id
	if _, err := e.create(); err == nil {
		t.Fatal("create succeeded without systemd")
	}
	if msg := e.lastError(); !strings.Contains(msg, "connect to systemd over D-Bus") {
		t.Errorf("logged error %q, want it to say systemd could not be reached", msg)
	}
	e.assertGone()
	if _, err := os.Stat("/sys/fs/cgroup/memory/system.slice/hostnet-test-" + e.id + ".scope"); err == nil {
		t.Error("a cgroup was created")
	}
}

// sameLines compares two files' lines as sets.
func sameLines(a, b string) bool {
	la, lb := strings.Fields(strings.ReplaceAll(a, " ", "_")), strings.Fields(strings.ReplaceAll(b, " ", "_"))
	slices.Sort(la)
	slices.Sort(lb)
	return slices.Equal(la, lb)
}
