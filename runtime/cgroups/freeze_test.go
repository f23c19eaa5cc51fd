package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// execLoopEnv makes the test binary a process that execs itself for ever
// from a second thread, the way a container's init (or an exec) is in the
// middle of execve when a pause arrives.
const execLoopEnv = "HOSTNET_CGROUPS_TEST_EXEC_LOOP"

func TestMain(m *testing.M) {
	if os.Getenv(execLoopEnv) != "" {
		execLoop()
	}
	os.Exit(m.Run())
}

func execLoop() {
	self, err := os.Executable()
	if err != nil {
		os.Exit(2)
	}
	// Threads that keep running while execve's de_thread kills them.
	for range 4 {
		go func() {
			for {
				_ = os.Getpid()
			}
		}()
	}
	_ = syscall.Exec(self, []string{self, "-test.run=^$"}, os.Environ())
	os.Exit(3)
}

// TestFreezeWhileExecing freezes and thaws a cgroup v1 whose process is
// always in the middle of execve. A task in execve cannot be frozen until
// the exec is done; a freezer that only waits for FROZEN hangs for ever
// (seen as `hostnet-runc pause` never returning); runc's retries and thaws
// in between until it freezes.
func TestFreezeWhileExecing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/sys/fs/cgroup/freezer"); err != nil {
		t.Skip("no cgroup v1 freezer on this host")
	}
	paths, err := Resolve(fmt.Sprintf("/hostnet-cgroups-test-freeze-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Thaw()
		if err := m.Delete(); err != nil {
			t.Errorf("delete cgroup: %v", err)
		}
	})

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	for range 2 {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), execLoopEnv+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		if err := m.Add(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	})

	for i := range 200 {
		done := make(chan error, 1)
		go func() { done <- m.Freeze() }()
		select {
		case err := <-done:
			// runc's freezer gives up with an error after its retries,
			// thawed; that is an answer, not a hang.
			if err == nil && !m.Frozen() {
				t.Fatalf("freeze %d returned, but the cgroup is not frozen", i)
			}
		case <-time.After(60 * time.Second):
			state, _ := os.ReadFile(filepath.Join(mountPoint("freezer"), paths["freezer"], "freezer.state"))
			// Thaw so the stuck freeze and the processes can end.
			_ = m.Thaw()
			t.Fatalf("freeze %d never returned: freezer.state %q", i, state)
		}
		if err := m.Thaw(); err != nil {
			t.Fatalf("thaw %d: %v", i, err)
		}
	}
}

// v2Frozen, the one reading of a cgroup v2 freeze that create's refusal of
// a frozen cgroup and Frozen share: cgroup.freeze is 1.
func TestV2Frozen(t *testing.T) {
	for _, tc := range []struct {
		content string // "" for no cgroup.freeze
		want    bool
	}{{"1\n", true}, {"0\n", false}, {"", false}} {
		dir := t.TempDir()
		if tc.content != "" {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := v2Frozen(dir); got != tc.want {
			t.Errorf("v2Frozen with cgroup.freeze %q = %v, want %v", tc.content, got, tc.want)
		}
	}
}
