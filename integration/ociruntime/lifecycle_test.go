package ociruntime

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	pidFile := filepath.Join(t.TempDir(), "init.pid")
	if _, err := e.create("--pid-file", pidFile); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(raw))
	if err != nil || strings.HasSuffix(string(raw), "\n") {
		t.Fatalf("pid file %q must be a bare decimal pid", raw)
	}
	st := e.state()
	if st.Status != specs.StateCreated || st.Pid != pid || st.ID != e.id || st.Bundle != e.bundle {
		t.Fatalf("state after create = %+v, want created with pid %d", st, pid)
	}

	e.mustRT("start", e.id)
	e.waitStatus(specs.StateRunning)
	if _, err := e.rt("start", e.id); err == nil {
		t.Error("a second start succeeded")
	}
	var pids []int
	if err := json.Unmarshal([]byte(e.mustRT("ps", "--format", "json", e.id)), &pids); err != nil || len(pids) != 1 || pids[0] != pid {
		t.Errorf("ps = %v (%v), want [%d]", pids, err, pid)
	}
	if _, err := e.rt("delete", e.id); err == nil || !strings.Contains(e.lastError(), "is not stopped") {
		t.Errorf("delete of a running container: err = %v, log = %q", err, e.lastError())
	}

	e.mustRT("pause", e.id)
	e.waitStatus(specs.ContainerState("paused"))
	e.mustRT("resume", e.id)
	e.waitStatus(specs.StateRunning)

	e.mustRT("kill", e.id, "KILL")
	e.waitStatus(specs.StateStopped)
	if st := e.state(); st.Pid != 0 {
		t.Errorf("stopped container reports pid %d, want 0", st.Pid)
	}
	e.mustRT("delete", e.id)
	e.assertGone()
	if _, err := e.rt("state", e.id); err == nil || !strings.Contains(e.lastError(), "does not exist") {
		t.Errorf("state after delete: err = %v, log = %q", err, e.lastError())
	}
}

func TestRunExitCode(t *testing.T) {
	e := newEnv(t, "sh", "-c", "exit 7")
	e.writeSpec()
	cmd := exec.Command(runtimeBin, "--root", e.root, "run", "--bundle", e.bundle, e.id)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("run exit = %v, want status 7", err)
	}
	e.assertGone()
}

func TestExec(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	// Without a cgroup namespace the cgroup path shows in /proc/self/cgroup.
	e.spec.Linux.Namespaces = slices.DeleteFunc(e.spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.CgroupNamespace
	})
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	init := e.state().Pid

	out, err := exec.Command(runtimeBin, "--root", e.root, "exec", e.id, "sh", "-c", "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; cat /proc/self/cgroup").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"pid", "mnt"} {
		want, _ := os.Readlink("/proc/" + strconv.Itoa(init) + "/ns/" + ns)
		if !strings.Contains(string(out), want) {
			t.Errorf("exec'd process is not in the container's %s namespace %s:\n%s", ns, want, out)
		}
	}
	if !strings.Contains(string(out), e.spec.Linux.CgroupsPath) {
		t.Errorf("exec'd process is not in the container's cgroup:\n%s", out)
	}

	proc := filepath.Join(t.TempDir(), "process.json")
	p := *e.spec.Process
	p.Args = []string{"sh", "-c", "exit 5"}
	data, _ := json.Marshal(p)
	os.WriteFile(proc, data, 0o644)
	err = exec.Command(runtimeBin, "--root", e.root, "exec", "--process", proc, e.id).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("exec --process exit = %v, want 5", err)
	}

	if _, err := e.rt("exec", e.id, "nosuchbinary"); err == nil || !strings.Contains(e.lastError(), `exec: "nosuchbinary": executable file not found in $PATH`) {
		t.Errorf("exec of a missing binary: err = %v, log = %q", err, e.lastError())
	}
}

func TestCreateErrorsLeaveNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(e *env)
		want   string
	}{
		{"missing executable", func(e *env) { e.spec.Process.Args = []string{"nosuchbinary"} }, `exec: "nosuchbinary": executable file not found in $PATH`},
		{"missing cwd", func(e *env) { e.spec.Process.Cwd = "/nope" }, `chdir to cwd ("/nope") set in config.json failed: no such file or directory`},
		{"bad mount", func(e *env) {
			e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/nonexistent-hostnet-src", Options: []string{"bind"}})
		}, "/nonexistent-hostnet-src"},
		{"failing hook", func(e *env) {
			e.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
		}, "error running createRuntime hook #0 (/bin/false)"},
		{"cgroup limit the kernel refuses", func(e *env) {
			e.spec.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "4096-4097"}}
		}, "cpuset"},
		{"systemd cgroup path with the cgroupfs driver", func(e *env) {
			e.spec.Linux.CgroupsPath = "system.slice:hostnet:" + e.id
		}, "is a systemd unit path: use the systemd cgroup driver"},
		{"invalid rlimit", func(e *env) {
			e.spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}
		}, `unknown rlimit type "RLIMIT_BOGUS"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "true")
			tc.mutate(e)
			if _, err := e.create(); err == nil {
				t.Fatal("create succeeded")
			}
			if msg := e.lastError(); !strings.Contains(msg, tc.want) {
				t.Errorf("logged error %q, want it to contain %q", msg, tc.want)
			}
			e.assertGone()
		})
	}
}

func TestMalformedConfig(t *testing.T) {
	e := newEnv(t, "true")
	if err := os.WriteFile(filepath.Join(e.bundle, "config.json"), []byte(`{"ociVersion": "1.0.0", "process": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.rt("create", "--bundle", e.bundle, e.id)
	if ee, ok := err.(interface{ Unwrap() error }); !ok || ee == nil {
		t.Fatalf("create with malformed config.json: %v", err)
	}
	if msg := e.lastError(); !strings.Contains(msg, filepath.Join(e.bundle, "config.json")) {
		t.Errorf("logged error %q does not name config.json", msg)
	}
	e.assertGone()
}

// oom_score_adj is applied, and sysctls are written before /proc/sys turns
// read-only (CRI sets both). A score below zero would need CAP_SYS_RESOURCE,
// which not every test machine grants even to root.
func TestOOMScoreAndSysctls(t *testing.T) {
	e := newEnv(t, "sh", "-c", "cat /proc/self/oom_score_adj /proc/sys/kernel/shm_rmid_forced")
	score := 500
	e.spec.Process.OOMScoreAdj = &score
	e.spec.Linux.Sysctl = map[string]string{"kernel.shm_rmid_forced": "1"}
	e.spec.Linux.ReadonlyPaths = append(e.spec.Linux.ReadonlyPaths, "/proc/sys")
	e.writeSpec()
	out, err := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "run", "--bundle", e.bundle, e.id).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if got := strings.Fields(string(out)); len(got) != 2 || got[0] != "500" || got[1] != "1" {
		t.Errorf("oom_score_adj and shm_rmid_forced = %q, want 500 and 1", out)
	}
}

// start must succeed for a program that exits at once: by the time start
// checks on the init, it may already have run.
func TestStartShortLivedProcess(t *testing.T) {
	e := newEnv(t, "true")
	for i := 0; i < 30; i++ {
		if _, err := e.create(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt("start", e.id); err != nil {
			t.Fatalf("round %d: %v (%s)", i, err, e.lastError())
		}
		e.mustRT("delete", "--force", e.id)
	}
	e.assertGone()
}
