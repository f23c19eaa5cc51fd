package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
)

// TestSameIDInTwoContainerds: two containerds on one host, with the
// default runtime root, each run a container of the same namespace and id.
// The runtime knows a container by its id in its state root: were the two
// shims to share one, the second create would fail on the first's state
// and its cleanup, a forced delete, would kill the first's container; so
// would the second's `shim delete` once its shim died. Each containerd's
// containers have their state apart, and the second's create, shim death
// and cleanup leave the first's container running.
func TestSameIDInTwoContainerds(t *testing.T) {
	requireHostnet(t)
	ns := fmt.Sprintf("hostnet-twin-%d", os.Getpid())
	const id = "twin"
	first := startCompatEnv(t, daemon.Config{Namespace: ns}, "the first containerd")
	second := startCompatEnv(t, daemon.Config{Namespace: ns}, "the second containerd")
	rootA := first.d.RuntimeStateRoot(daemon.HostnetRuntime, runtimeRoot)
	rootB := second.d.RuntimeStateRoot(daemon.HostnetRuntime, runtimeRoot)
	if rootA == rootB {
		t.Fatalf("both containerds keep namespace %s's runtime state in %s", ns, rootA)
	}

	pidA, err := first.runTwin(t, id)
	if err != nil {
		t.Fatal(err)
	}
	// The second's create: in a shared state root, it failed with
	// "container with id exists", and its cleanup killed the first's.
	pidB, err := second.runTwin(t, id)
	if err != nil {
		t.Error(err)
		first.assertRuns(t, id, pidA, rootA)
		t.FailNow()
	}
	if pidA == pidB {
		t.Fatalf("both containerds report init pid %d for %s", pidA, id)
	}
	first.assertRuns(t, id, pidA, rootA)
	second.assertRuns(t, id, pidB, rootB)

	// The second's shim dies: containerd runs `shim delete`, whose forced
	// delete kills the second's container and only it.
	shims, err := second.d.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	shimB := shims[id]
	if shimB == 0 {
		t.Fatalf("no shim serves %s in the second containerd (shims: %v)", id, shims)
	}
	second.killShim(t, id, shimB)
	if !daemon.WaitGone(pidB, 10*time.Second) {
		t.Fatalf("init %d of the second containerd's %s outlived its shim's cleanup", pidB, id)
	}
	// The init dies before `shim delete` has removed the state: wait for it.
	if !waitNotExist(filepath.Join(rootB, id), 10*time.Second) {
		t.Errorf("runtime state %s left after shim delete", filepath.Join(rootB, id))
	}
	first.assertRuns(t, id, pidA, rootA)

	// The first's container is deleted as usual.
	first.mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	first.mustCtr(t, "tasks", "delete", "--force", id)
	if !daemon.WaitGone(pidA, 10*time.Second) {
		t.Errorf("init %d of the first containerd's %s outlived its delete", pidA, id)
	}
	if _, err := os.Stat(filepath.Join(rootA, id)); err == nil {
		t.Errorf("runtime state %s left after task delete", filepath.Join(rootA, id))
	}
}

// runTwin runs `sleep 1000` in id, in a cgroup named after the daemon's
// directory (both would default to /<ns>/<id>), and returns its init pid.
func (e *compatEnv) runTwin(t *testing.T, id string) (int, error) {
	t.Helper()
	t.Cleanup(func() { e.remove(t, id) })
	cgroup := "/" + e.d.Namespace + "/" + filepath.Base(e.d.Dir)
	if out, err := e.ctr(t, e.runArgs([]string{"--detach", "--cgroup", cgroup}, id, "sleep", "1000")...); err != nil {
		return 0, fmt.Errorf("ctr run %s in %s: %w\n%s", id, e.d.Dir, err, out)
	}
	return e.waitStatus(t, id, "RUNNING"), nil
}

// assertRuns checks that id's task runs with init pid, and that the
// runtime's state of it in root says so.
func (e *compatEnv) assertRuns(t *testing.T, id string, pid int, root string) {
	t.Helper()
	if got, status, ok := e.task(t, id); !ok || status != "RUNNING" || got != pid {
		t.Errorf("task %s in %s: pid %d, %q (listed %v), want pid %d running", id, e.d.Dir, got, status, ok, pid)
	}
	if !daemon.Alive(pid) {
		t.Errorf("init %d of %s in %s is gone", pid, id, e.d.Dir)
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(binDir, "hostnet-runc"), "--root", root, "state", id).Output()
	if err != nil {
		t.Errorf("hostnet-runc --root %s state %s: %v", root, id, err)
		return
	}
	var st struct {
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Pid != pid || st.Status != "running" {
		t.Errorf("hostnet-runc --root %s state %s = %s (%v), want pid %d running", root, id, out, err, pid)
	}
}

// waitNotExist reports whether path is gone within timeout.
func waitNotExist(path string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
