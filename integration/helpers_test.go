package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

var idSeq atomic.Int64

var notIDChars = regexp.MustCompile(`[^a-z0-9]+`)

// newID returns a container id unique to this test, derived from its name,
// and registers a cleanup that removes the container if the test left it.
func newID(t *testing.T) string {
	t.Helper()
	name := strings.Trim(notIDChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	id := fmt.Sprintf("%s-%d", name, idSeq.Add(1))
	t.Cleanup(func() { removeContainer(t, id) })
	return id
}

// removeContainer kills and deletes container id if it still exists.
func removeContainer(t *testing.T, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := testClient.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return
	} else if err != nil {
		t.Errorf("cleanup %s: %v", id, err)
		return
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
			// A `ctr run --rm` may have deleted it meanwhile; only a task
			// that is still there is an error.
			if _, terr := c.Task(ctx, nil); !errdefs.IsNotFound(terr) {
				t.Errorf("cleanup %s: delete task: %v", id, err)
			}
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("cleanup %s: delete container: %v", id, err)
	}
}

// killTask sends SIGKILL to container id's task, if it has one.
func killTask(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := testClient.LoadContainer(ctx, id); err == nil {
		if task, err := c.Task(ctx, nil); err == nil {
			_ = task.Kill(ctx, syscall.SIGKILL)
		}
	}
}

// runFlags are the `ctr run` flags every test container gets. Against the
// stock runc shim, --net-host gives the host network the hostnet shim
// provides on its own, so the suite can be checked without hostnet.
func runFlags() []string {
	flags := []string{"--fifo-dir", testDaemon.FIFODir, "--runtime", testRuntime}
	if testRuntime != daemon.HostnetRuntime {
		flags = append(flags, "--net-host")
	}
	return flags
}

// ctrRunArgs is `run <flags> [extra...] <image> <id> <args...>`.
func ctrRunArgs(extra []string, id string, args ...string) []string {
	a := append([]string{"run"}, runFlags()...)
	a = append(a, extra...)
	a = append(a, image.DefaultName, id)
	return append(a, args...)
}

// ctrRun runs `ctr run --rm` to completion and returns stdout.
func ctrRun(t *testing.T, id string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return testDaemon.CtrOutput(ctx, ctrRunArgs([]string{"--rm"}, id, args...)...)
}

// mustCtr runs a ctr command and fails the test if it fails.
func mustCtr(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := testDaemon.CtrOutput(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// background is a `ctr run` running in the background.
type background struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// startCtrRun starts `ctr run --rm` in the background and waits until the
// task is running. The test's cleanup kills it if the test did not.
func startCtrRun(t *testing.T, id string, args ...string) *background {
	t.Helper()
	return startCtrRunFlags(t, nil, id, args...)
}

// startCtrRunFlags is startCtrRun with extra `ctr run` flags.
func startCtrRunFlags(t *testing.T, flags []string, id string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{cmd: testDaemon.Ctr(ctx, ctrRunArgs(append([]string{"--rm"}, flags...), id, args...)...), done: make(chan struct{})}
	bg.cmd.Stdout, bg.cmd.Stderr = &bg.stdout, &bg.stderr
	if err := bg.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		bg.err = bg.cmd.Wait()
		close(bg.done)
	}()
	t.Cleanup(func() {
		// Let ctr run see its task die and remove the container itself,
		// then remove whatever it did not.
		select {
		case <-bg.done:
		default:
			killTask(id)
			select {
			case <-bg.done:
			case <-time.After(30 * time.Second):
			}
		}
		cancel()
		<-bg.done
		removeContainer(t, id)
	})
	waitRunning(t, id, bg.done, func() string {
		return fmt.Sprintf("ctr run exited: %v\nstderr: %s", bg.err, bg.stderr.String())
	})
	return bg
}

// wait waits for ctr run to return and gives its exit code.
func (bg *background) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-bg.done:
	case <-time.After(timeout):
		t.Fatalf("ctr run did not return within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(bg.err, &ee) {
		return ee.ExitCode()
	}
	if bg.err != nil {
		t.Fatalf("ctr run: %v", bg.err)
	}
	return 0
}

// waitRunning polls until container id's task is running. If exited is
// closed first, the test fails with why().
func waitRunning(t *testing.T, id string, exited <-chan struct{}, why func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		if c, err := testClient.LoadContainer(ctx, id); err == nil {
			if task, err := c.Task(ctx, nil); err == nil {
				if st, err := task.Status(ctx); err == nil && st.Status == client.Running {
					return
				}
			}
		}
		select {
		case <-exited:
			t.Fatalf("task %s never ran: %s", id, why())
		case <-ctx.Done():
			t.Fatalf("task %s not running: %v", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// footprint is what a container leaves on the host while it exists.
type footprint struct {
	id         string
	shimPid    int
	cgroupPath string
}

// takeFootprint records a running container's shim pid and cgroup path.
func takeFootprint(t *testing.T, id string) footprint {
	t.Helper()
	fp := footprint{id: id}
	shims, err := testDaemon.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	if fp.shimPid = shims[id]; fp.shimPid == 0 {
		t.Fatalf("no shim process serves running container %s (shims: %v)", id, shims)
	}
	c, err := testClient.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux != nil {
		fp.cgroupPath = spec.Linux.CgroupsPath
	}
	if fp.cgroupPath == "" {
		t.Fatalf("container %s has no cgroupsPath", id)
	}
	if !cgroupExists(t, fp.cgroupPath) {
		t.Errorf("running container %s has no cgroup %s in any hierarchy", id, fp.cgroupPath)
	}
	return fp
}

// assertGone checks that container id left nothing behind on the host:
// no containerd record, mount, shim process, runtime state or cgroup.
func assertGone(t *testing.T, fp footprint) {
	t.Helper()
	if _, err := testClient.LoadContainer(t.Context(), fp.id); !errdefs.IsNotFound(err) {
		t.Errorf("container %s still known to containerd (err=%v)", fp.id, err)
	}
	assertNoMounts(t, fp.id)
	if fp.shimPid != 0 && !daemon.WaitGone(fp.shimPid, 10*time.Second) {
		t.Errorf("shim pid %d of %s still running", fp.shimPid, fp.id)
	}
	if shims, err := testDaemon.ShimPids(); err != nil {
		t.Error(err)
	} else if pid, ok := shims[fp.id]; ok {
		t.Errorf("shim pid %d still serves %s", pid, fp.id)
	}
	if _, err := os.Stat(testDaemon.TaskDir(fp.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("task bundle %s still exists (err=%v)", testDaemon.TaskDir(fp.id), err)
	}
	assertNoRuntimeState(t, fp.id)
	if fp.cgroupPath != "" && cgroupExists(t, fp.cgroupPath) {
		t.Errorf("cgroup %s of %s still exists", fp.cgroupPath, fp.id)
	}
}

// assertNoMounts checks /proc/self/mountinfo for any mount whose source,
// mount point or options name id as a path element.
func assertNoMounts(t *testing.T, id string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		tokens := strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" /,=:", r) })
		if slices.Contains(tokens, id) {
			t.Errorf("mount of %s left: %s", id, line)
		}
	}
}

func assertNoRuntimeState(t *testing.T, id string) {
	t.Helper()
	if runtimeRoot == "" {
		return
	}
	dir := filepath.Join(testDaemon.RuntimeStateRoot(testRuntime, runtimeRoot), id)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runtime state %s still exists (err=%v)", dir, err)
	}
}

// cgroupExists reports whether cgroupPath exists in any cgroup hierarchy.
func cgroupExists(t *testing.T, cgroupPath string) bool {
	t.Helper()
	roots, err := daemon.CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, cgroupPath)); err == nil {
			return true
		}
	}
	return false
}

// hasErrorNaming reports whether a JSON-lines log has an entry at level
// "error" whose msg contains want.
func hasErrorNaming(t *testing.T, log []byte, want string) bool {
	t.Helper()
	for _, line := range bytes.Split(log, []byte("\n")) {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Errorf("log line is not JSON: %q: %v", line, err)
			continue
		}
		if entry.Level == "error" && strings.Contains(entry.Msg, want) {
			return true
		}
	}
	return false
}
