package integration

// Robustness: containerd restarting under running shims, and a shim dying
// under its running container.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
)

// shimSocket is the path of the shim socket of container id: containerd's
// shim helpers put it in /run/containerd/s, named after the sha256 of
// <containerd address>/<namespace>/<id>.
func shimSocket(id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(testDaemon.Address, testDaemon.Namespace, id)))
	return fmt.Sprintf("/run/containerd/s/%x", sum)
}

// runDetached starts `sleep 1000` in container id with `ctr run --detach`
// and the variant's runtime, and waits until it runs.
func runDetached(t *testing.T, v runtimeVariant, id string) {
	t.Helper()
	mustCtr(t, ctrRunArgs(append([]string{"--detach"}, v.ctrFlags()...), id, "sleep", "1000")...)
	waitRunning(t, id, nil, nil)
}

// TestRestartContainerd: ten detached containers survive a restart of
// containerd: their shims keep running, and afterwards containerd lists
// them, execs into them, kills them (reporting the exit) and deletes them,
// leaving nothing behind.
func TestRestartContainerd(t *testing.T) {
	const n = 10
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		var ids []string
		var fps []footprint
		initPids := map[string]int{}
		for range n {
			id := newID(t)
			runDetached(t, v, id)
			ids = append(ids, id)
			fps = append(fps, takeFootprint(t, id))
			pid, _ := ctrTaskStatus(t, id)
			initPids[id] = pid
		}
		before := testDaemon.Pid()
		if err := testDaemon.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if testDaemon.Pid() == before {
			t.Fatal("containerd has the same pid after the restart")
		}

		// The shims and the containers' processes never stopped.
		shims, err := testDaemon.ShimPids()
		if err != nil {
			t.Fatal(err)
		}
		for _, fp := range fps {
			if shims[fp.id] != fp.shimPid {
				t.Errorf("%s: shim pid %d after the restart, want %d still running", fp.id, shims[fp.id], fp.shimPid)
			}
			if !daemon.Alive(initPids[fp.id]) {
				t.Errorf("%s: init pid %d died with the restart", fp.id, initPids[fp.id])
			}
		}

		// List.
		for _, id := range ids {
			if pid, status := ctrTaskStatus(t, id); status != "RUNNING" || pid != initPids[id] {
				t.Errorf("after restart, ctr tasks ls: %s pid %d %s, want pid %d RUNNING", id, pid, status, initPids[id])
			}
		}
		// Exec.
		for _, id := range ids {
			out, err := testDaemon.CtrOutput(ctx, "tasks", "exec", "--exec-id", "after-restart", id, "sh", "-c", "echo alive-$$")
			if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "alive-") {
				t.Errorf("exec into %s after restart: %q, %v", id, out, err)
			}
		}
		// Kill: the exits reach the client through the restarted daemon.
		exits := map[string]<-chan client.ExitStatus{}
		for _, id := range ids {
			c, err := testClient.LoadContainer(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			task, err := c.Task(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if exits[id], err = task.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
		}
		for _, id := range ids {
			if st := waitExit(t, "init of "+id, exits[id], 30*time.Second); st.ExitCode() != 128+9 {
				t.Errorf("%s exited %d after SIGKILL, want %d", id, st.ExitCode(), 128+9)
			}
		}
		// Delete.
		for _, id := range ids {
			mustCtr(t, "tasks", "delete", id)
			mustCtr(t, "containers", "delete", id)
		}
		for _, fp := range fps {
			assertGone(t, fp)
			if !daemon.WaitGone(initPids[fp.id], 10*time.Second) {
				t.Errorf("init pid %d of %s still alive", initPids[fp.id], fp.id)
			}
			if _, err := os.Stat(shimSocket(fp.id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("shim socket %s of %s left (err=%v)", shimSocket(fp.id), fp.id, err)
			}
		}
	})
}

// TestShimCrash: after a shim is SIGKILLed under a running container,
// containerd reports the task's exit and its delete path cleans everything
// up: the container's processes, mounts, cgroup, runtime state, bundle and
// shim socket.
func TestShimCrash(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		runDetached(t, v, id)
		fp := takeFootprint(t, id)
		initPid, _ := ctrTaskStatus(t, id)
		if !daemon.Alive(initPid) {
			t.Fatalf("init pid %d of %s not alive", initPid, id)
		}
		sock := shimSocket(id)
		if _, err := os.Stat(sock); err != nil {
			t.Fatalf("shim socket of a running container: %v", err)
		}

		exitCtx, cancel := context.WithCancel(context.Background())
		defer cancel()
		envs, errs := testClient.Subscribe(exitCtx, fmt.Sprintf(`namespace==%q,topic=="/tasks/exit"`, testDaemon.Namespace))
		time.Sleep(100 * time.Millisecond)

		if err := syscall.Kill(fp.shimPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if !daemon.WaitGone(fp.shimPid, 10*time.Second) {
			t.Fatalf("shim %d survived SIGKILL", fp.shimPid)
		}

		// containerd notices the dead shim and reports the exit.
		var exit *eventstypes.TaskExit
		timeout := time.After(30 * time.Second)
		for exit == nil {
			select {
			case env := <-envs:
				e, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					t.Fatal(err)
				}
				if te, ok := e.(*eventstypes.TaskExit); ok && te.ContainerID == id {
					exit = te
				}
			case err := <-errs:
				t.Fatalf("subscription: %v", err)
			case <-timeout:
				t.Fatalf("no /tasks/exit event for %s within 30s of its shim's death", id)
			}
		}
		if exit.ID != id || exit.Pid != uint32(initPid) {
			t.Errorf("exit event %+v, want id %s pid %d", exit, id, initPid)
		}
		t.Logf("exit reported after the shim died: pid %d status %d", exit.Pid, exit.ExitStatus)

		// The user's delete path: whatever is left of the task, then the
		// container.
		c, err := testClient.LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task, err := c.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				t.Errorf("delete task after shim crash: %v", err)
			}
		} else if !errdefs.IsNotFound(err) {
			t.Errorf("load task after shim crash: %v", err)
		}
		mustCtr(t, "containers", "delete", id)

		if !daemon.WaitGone(initPid, 10*time.Second) {
			t.Errorf("init pid %d of %s still alive after the delete", initPid, id)
		}
		assertGone(t, fp)
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			if testRuntime == daemon.HostnetRuntime {
				t.Errorf("shim socket %s left (err=%v)", sock, err)
			} else {
				// containerd-shim-runc-v2 (v2.4.2) leaves the socket of a
				// killed shim behind: only hostnet is held to it.
				t.Logf("stock shim left its socket %s; removing it", sock)
				os.Remove(sock)
			}
		}
	})
}
