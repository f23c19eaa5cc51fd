package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// TestShimExecsRuntimeOnlyToSpawn (issue 14): with hostnet's own
// hostnet-runc, the shim execs the runtime only for what spawns the
// container's processes, create and exec; start, update, pause, resume,
// ps, kill and delete run in the shim, on the state the command line
// keeps, which `hostnet-runc state` from outside still reads.
//
// The execs are counted by fanotify (FAN_OPEN_EXEC) on a private copy of
// the shim and hostnet-runc, which only this test's container runs:
// containerd runs a shim given by absolute path, and the shim finds its
// runtime next to itself, as an installed one does.
func TestShimExecsRuntimeOnlyToSpawn(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("hostnet's shim only")
	}
	ctx := t.Context()
	dir := t.TempDir()
	shim := copyBinary(t, filepath.Join(binDir, "containerd-shim-hostnet-v1"), dir)
	runtime := copyBinary(t, filepath.Join(binDir, "hostnet-runc"), dir)
	cfg := filepath.Join(dir, "runtime.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[runtime]\nroot = %q\n", runtimeRoot), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := &runtimeoptions.Options{ConfigPath: cfg}
	execs := countExecs(t, runtime)
	// Read from outside with the build's own hostnet-runc, whose execs
	// are not counted.
	state := func(id string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "hostnet-runc"), "--root", testDaemon.RuntimeStateRoot(testRuntime, runtimeRoot), "state", id).Output()
		if err != nil {
			t.Fatalf("hostnet-runc state %s: %v", id, err)
		}
		var s struct{ Status string }
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		return s.Status
	}

	id := newID(t)
	img, err := testClient.GetImage(ctx, image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := testClient.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(shim, opts),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")),
	)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if got := execs(); len(got) != 1 {
		t.Errorf("creating the task exec'd hostnet-runc %d times, want once (create), from:\n%s", len(got), strings.Join(got, "\n"))
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := execs(); len(got) != 0 {
			t.Errorf("%s exec'd hostnet-runc %d times, want none, from:\n%s", what, len(got), strings.Join(got, "\n"))
		}
	}
	step("start", func() error { return task.Start(ctx) })
	if st := state(id); st != "running" {
		t.Errorf("after start, hostnet-runc state says %s, want running", st)
	}

	ps := processSpec(t, c, "true")
	p, err := task.Exec(ctx, "probe", ps, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	pexit, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitExit(t, "exec", pexit, time.Minute)
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if got := execs(); len(got) != 1 {
		t.Errorf("an exec exec'd hostnet-runc %d times, want once (exec), from:\n%s", len(got), strings.Join(got, "\n"))
	}

	pidsLimit := int64(123)
	step("update", func() error {
		return task.Update(ctx, client.WithResources(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pidsLimit}}))
	})
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := readPidsMax(t, spec.Linux.CgroupsPath); got != fmt.Sprint(pidsLimit) {
		t.Errorf("after update, pids.max of %s is %s, want %d", spec.Linux.CgroupsPath, got, pidsLimit)
	}
	step("pause", func() error { return task.Pause(ctx) })
	if st := state(id); st != "paused" {
		t.Errorf("after pause, hostnet-runc state says %s, want paused", st)
	}
	step("resume", func() error { return task.Resume(ctx) })
	if st := state(id); st != "running" {
		t.Errorf("after resume, hostnet-runc state says %s, want running", st)
	}
	step("ps", func() error {
		pids, err := task.Pids(ctx)
		if err == nil && (len(pids) != 1 || pids[0].Pid != task.Pid()) {
			err = fmt.Errorf("pids %v, want the init's %d only", pids, task.Pid())
		}
		return err
	})
	step("kill", func() error { return task.Kill(ctx, syscall.SIGKILL) })
	if st := waitExit(t, "init", exitc, time.Minute); st.ExitCode() != 128+uint32(syscall.SIGKILL) {
		t.Errorf("init exited with %d, want %d", st.ExitCode(), 128+uint32(syscall.SIGKILL))
	}
	step("delete", func() error {
		_, err := task.Delete(ctx)
		return err
	})
	assertNoRuntimeState(t, id)
}

// copyBinary copies the executable src into dir.
func copyBinary(t *testing.T, src, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, filepath.Base(src))
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// countExecs watches path with fanotify and returns a function that lists
// the processes that exec'd it since it was last called, by the command
// line they had before the exec: the shim's task server's ("... -id <id>
// ..."), or containerd's `shim -info`, which asks the runtime for its
// features at every task create and is left out. Only execve opens count
// (FAN_OPEN_EXEC_PERM): create reading its own binary to seal a copy for
// the init does not. A permission event holds the exec until it is
// answered, so the exec'ing process is still there to be read.
func countExecs(t *testing.T, path string) func() []string {
	t.Helper()
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		t.Fatalf("fanotify_init: %v", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, path); err != nil {
		unix.Close(fd)
		t.Fatalf("fanotify_mark %s: %v", path, err)
	}
	var (
		mu    sync.Mutex
		execs []string
	)
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		<-stopped
		// Closing the group allows whatever it still holds.
		unix.Close(fd)
	})
	go func() {
		defer close(stopped)
		buf := make([]byte, 4096)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100); err != nil && err != unix.EINTR {
				return
			}
			size, err := unix.Read(fd, buf)
			if err != nil {
				continue // EAGAIN: nothing yet
			}
			for off := 0; off+int(unsafe.Sizeof(unix.FanotifyEventMetadata{})) <= size; {
				m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
				off += int(m.Event_len)
				if m.Fd < 0 {
					continue
				}
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", m.Pid)) // procfs-literal: a host process, read by the test
				resp := unix.FanotifyResponse{Fd: m.Fd, Response: unix.FAN_ALLOW}
				_, _ = unix.Write(fd, (*[unsafe.Sizeof(resp)]byte)(unsafe.Pointer(&resp))[:])
				unix.Close(int(m.Fd))
				args := strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " "))
				if slices.Contains(args, "-info") {
					continue
				}
				mu.Lock()
				execs = append(execs, strings.Join(args, " "))
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		got := execs
		execs = nil
		return got
	}
}

// readPidsMax reads pids.max of the cgroup at cgroupsPath, in the v1 pids
// hierarchy or, on cgroup v2, the unified one.
func readPidsMax(t *testing.T, cgroupsPath string) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup/pids", cgroupsPath)
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		dir = filepath.Join("/sys/fs/cgroup", cgroupsPath)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pids.max"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
