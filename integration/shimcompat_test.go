package integration

// Where clients written against containerd's runc shim (containerd's own
// tests, nerdctl, the kubelet through CRI) depend on how it behaves, the
// hostnet shim must behave the same (issue 12). Each test runs with every
// runtime variant, and passes against the stock runc shim too.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// newContainerWith is newContainer with the given runtime options, way to
// make the root file system, image and extra spec options.
func newContainerWith(t *testing.T, id string, runtimeOpts any, snapshot func(string, client.Image, ...snapshots.Opt) client.NewContainerOpts, img client.Image, extra []oci.SpecOpts, args ...string) client.Container {
	t.Helper()
	ctx := t.Context()
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}, extra...)
	if testRuntime != daemon.HostnetRuntime {
		specOpts = append(specOpts, oci.WithHostNamespace(specs.NetworkNamespace))
	}
	c, err := testClient.NewContainer(ctx, id,
		client.WithImage(img),
		snapshot(id, img),
		client.WithRuntime(testRuntime, runtimeOpts),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testImage(t *testing.T) client.Image {
	t.Helper()
	img, err := testClient.GetImage(t.Context(), image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// runcOptions are runc's runtime options selecting the variant's runtime
// binary (empty: the shim's default), which the hostnet shim and the runc
// shim both understand.
func (v runtimeVariant) runcOptions(binary string) *options.Options {
	if binary == "" && v.configPath != "" {
		binary = v.binary
	}
	return &options.Options{BinaryName: binary}
}

// waitPath polls until path exists.
func waitPath(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slowExecRuntime writes, into dir, a runtime that runs the variant's
// runtime binary, except that `exec` of a process whose spec mentions
// "hostnet-slow-exec" waits until dir/release exists, having created
// dir/waiting: a slow runtime, or a loaded machine, made deterministic.
func slowExecRuntime(t *testing.T, dir string, v runtimeVariant) string {
	t.Helper()
	real := v.binary
	if v.configPath == "" && testRuntime == daemon.HostnetRuntime {
		real = filepath.Join(binDir, "hostnet-runc")
	}
	script := fmt.Sprintf(`#!/bin/sh
prev=
for a in "$@"; do
	if [ "$prev" = --process ] && grep -q hostnet-slow-exec "$a"; then
		: > %[1]s/waiting
		while [ ! -e %[1]s/release ]; do sleep 0.02; done
	fi
	prev=$a
done
exec %[2]s "$@"
`, dir, real)
	path := filepath.Join(dir, "slow-exec-runtime")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestShimExecStartDoesNotBlock (issue 12, item 1): while one exec's start is
// held up in the runtime, another exec starts, runs and exits, and the
// init's exit is reported once the held exec is resolved, after every
// exec's exit.
func TestShimExecStartDoesNotBlock(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		dir := t.TempDir()
		wrapper := slowExecRuntime(t, dir, v)
		release := func() { _ = os.WriteFile(filepath.Join(dir, "release"), nil, 0o644) }
		t.Cleanup(release)

		id := newID(t)
		events := subscribeTasks(t, id)
		c := newContainerWith(t, id, v.runcOptions(wrapper), client.WithNewSnapshot, testImage(t), nil, "sleep", "1000")
		task, initExit := startTask(t, c, cio.NullIO)

		slow, err := task.Exec(ctx, "slow", processSpec(t, c, "sh", "-c", "echo hostnet-slow-exec; exit 7"), cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		slowStarted := make(chan error, 1)
		go func() { slowStarted <- slow.Start(context.Background()) }()
		waitPath(t, filepath.Join(dir, "waiting"), 30*time.Second)

		fast, err := task.Exec(ctx, "fast", processSpec(t, c, "sh", "-c", "exit 3"), cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		fastExit, err := fast.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := fast.Start(sctx); err != nil {
			t.Fatalf("a second exec did not start while the first one's start was held: %v", err)
		}
		if st := waitExit(t, "second exec", fastExit, 30*time.Second); st.ExitCode() != 3 {
			t.Errorf("second exec exited %d, want 3", st.ExitCode())
		}
		if _, err := fast.Delete(ctx); err != nil {
			t.Fatal(err)
		}

		// The init dies while the first exec is still starting: its exit
		// waits for that start, which then fails (the container is gone)
		// or yields a process that is killed and reported first.
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		release()
		var slowErr error
		select {
		case slowErr = <-slowStarted:
		case <-time.After(time.Minute):
			t.Fatal("the held exec's start never returned")
		}
		if st := waitExit(t, "init", initExit, time.Minute); st.ExitCode() != 128+9 {
			t.Errorf("init exited %d, want %d", st.ExitCode(), 128+9)
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}

		got := collectUntil(t, events, "TaskDelete")
		initExitAt := slices.IndexFunc(got, func(e taskEvent) bool { return e.Type == "TaskExit" && e.ID == id })
		if initExitAt < 0 {
			t.Fatalf("no TaskExit for the init in %v", got)
		}
		for i, e := range got {
			if e.Type == "TaskExit" && e.ID != id && i > initExitAt {
				t.Errorf("exec %s's TaskExit came after the init's: %v", e.ID, got)
			}
		}
		if !slices.ContainsFunc(got, func(e taskEvent) bool { return e.Type == "TaskExit" && e.ID == "fast" && e.ExitStatus == 3 }) {
			t.Errorf("no TaskExit of the second exec with status 3: %v", got)
		}
		slowRan := slices.ContainsFunc(got, func(e taskEvent) bool { return e.Type == "TaskExecStarted" && e.ID == "slow" })
		slowExited := slices.ContainsFunc(got, func(e taskEvent) bool { return e.Type == "TaskExit" && e.ID == "slow" })
		if slowRan != slowExited || (slowErr == nil) != slowRan {
			t.Errorf("held exec: start error %v, but events %v", slowErr, got)
		}
	})
}

// collectUntil collects events until one of type last came, and then a
// moment more for stragglers.
func collectUntil(t *testing.T, events <-chan taskEvent, last string) []taskEvent {
	t.Helper()
	var got []taskEvent
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-events:
			got = append(got, e)
			if e.Type == last {
				timeout = time.After(500 * time.Millisecond)
			}
		case <-timeout:
			if !slices.ContainsFunc(got, func(e taskEvent) bool { return e.Type == last }) {
				t.Errorf("no %s within 30s; events %v", last, got)
			}
			return got
		}
	}
}

// fifoIO is a cio.IO whose stdout fifo the test reads itself, when it wants.
type fifoIO struct{ cfg cio.Config }

func (f *fifoIO) Config() cio.Config { return f.cfg }
func (f *fifoIO) Cancel()            {}
func (f *fifoIO) Wait()              {}
func (f *fifoIO) Close() error       { return nil }

// shimHolds reports whether process pid has path open.
func shimHolds(pid int, path string) bool {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == path {
			return true
		}
	}
	return false
}

// TestShimExecClientOpensFifoLate (issue 12, item 1, the `ctr tasks exec`
// hangs): containerd's client opens its end of an exec's stdout fifo in a
// goroutine, so the exec may run before that open does. The output must
// still reach the client, and the client's open must not wait forever for a
// writer that is gone: the shim waits for the client's reader before the
// output flows.
func TestShimExecClientOpensFifoLate(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, _ := startSleeper(t, v, id)

		dir := t.TempDir()
		stdout, stderr := filepath.Join(dir, "late-stdout"), filepath.Join(dir, "late-stderr")
		for _, f := range []string{stdout, stderr} {
			if err := syscall.Mkfifo(f, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		p, err := task.Exec(ctx, "late", processSpec(t, c, "sh", "-c", "echo late-output; echo late-error >&2"),
			func(string) (cio.IO, error) { return &fifoIO{cfg: cio.Config{Stdout: stdout, Stderr: stderr}}, nil })
		if err != nil {
			t.Fatal(err)
		}
		exitc, err := p.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan error, 1)
		go func() { started <- p.Start(context.Background()) }()

		// A shim that does not wait for the reader lets the exec run and
		// exit, and closes its ends, before the reader comes.
		select {
		case err := <-started:
			started <- err
			waitExit(t, "exec", exitc, 30*time.Second)
			shims, _ := testDaemon.ShimPids()
			for deadline := time.Now().Add(10 * time.Second); shimHolds(shims[id], stdout) && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
		case <-time.After(time.Second):
		}

		// Both at once, as cio opens them.
		readLate := func(path string) func(want string) {
			type result struct {
				out string
				err error
			}
			read := make(chan result, 1)
			go func() {
				f, err := os.OpenFile(path, os.O_RDONLY, 0) // waits for a writer
				if err != nil {
					read <- result{err: err}
					return
				}
				defer f.Close()
				b, err := io.ReadAll(f)
				read <- result{string(b), err}
			}()
			return func(want string) {
				t.Helper()
				select {
				case r := <-read:
					if r.err != nil || r.out != want {
						t.Errorf("exec output on %s: %q (%v), want %q", filepath.Base(path), r.out, r.err, want)
					}
				case <-time.After(30 * time.Second):
					// Unblock the reader's open, then fail.
					if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						w.Close()
					}
					t.Errorf("the client's open of the exec's %s fifo never found a writer: the output was lost", filepath.Base(path))
				}
			}
		}
		checkOut, checkErr := readLate(stdout), readLate(stderr)
		checkOut("late-output\n")
		checkErr("late-error\n")
		if err := <-started; err != nil {
			t.Fatalf("start exec: %v", err)
		}
		if st := waitExit(t, "exec", exitc, 30*time.Second); st.ExitCode() != 0 {
			t.Errorf("exec exited %d", st.ExitCode())
		}
		if _, err := p.Delete(ctx); err != nil {
			t.Error(err)
		}
	})
}

// TestShimExecTerminalFromRequest (issue 12, item 2): an exec request with a
// terminal gets one even if its process spec says otherwise, as with the
// runc shim: the request's flag is what the client connected stdio for.
func TestShimExecTerminalFromRequest(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, _ := startSleeper(t, v, id)
		var out syncBuffer
		ps := processSpec(t, c, "sh", "-c", "tty; [ -t 1 ] && echo stdout-is-tty")
		ps.Terminal = false
		p, err := task.Exec(ctx, "reqtty", ps, streams(nil, &out, nil, cio.WithTerminal))
		if err != nil {
			t.Fatal(err)
		}
		exitc, err := p.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatalf("start exec: %v", err)
		}
		st := waitExit(t, "exec", exitc, 30*time.Second)
		if _, err := p.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		got := strings.ReplaceAll(out.String(), "\r", "")
		if st.ExitCode() != 0 || !strings.Contains(got, "/dev/pts/") || !strings.Contains(got, "stdout-is-tty") {
			t.Errorf("exec with a terminal requested: exit %d, output %q; want a /dev/pts terminal on stdout", st.ExitCode(), got)
		}
	})
}

// TestShimResizeBeforeStart (issue 12, item 3): like `nerdctl exec -it`, the
// client resizes an exec's terminal before it starts it. The runc shim
// accepts that; the hostnet shim also gives the exec that size.
func TestShimResizeBeforeStart(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, _ := startSleeper(t, v, id)
		var out syncBuffer
		ps := processSpec(t, c, "stty", "size")
		ps.Terminal = true
		p, err := task.Exec(ctx, "sized", ps, streams(nil, &out, nil, cio.WithTerminal))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Resize(ctx, 91, 27); err != nil {
			t.Fatalf("resize of an exec not started yet: %v", err)
		}
		exitc, err := p.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatalf("start exec: %v", err)
		}
		waitExit(t, "exec", exitc, 30*time.Second)
		if _, err := p.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		// The runc shim drops the size; only hostnet promises it.
		if got := strings.TrimSpace(strings.ReplaceAll(out.String(), "\r", "")); testRuntime == daemon.HostnetRuntime && got != "27 91" {
			t.Errorf("stty size in the exec = %q, want %q", got, "27 91")
		}
	})
}

// TestShimMetricsAfterExit (issue 12, item 4): an exited task that is not
// deleted yet still has metrics, its cgroup's last ones, as containerd's CRI
// reads them after an exit to tell an OOM kill.
func TestShimMetricsAfterExit(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c := newContainer(t, v, id, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
		task, exitc := startTask(t, c, cio.NullIO)
		waitExit(t, "task", exitc, time.Minute)
		m, err := task.Metrics(ctx)
		if err != nil {
			t.Fatalf("metrics of an exited task: %v", err)
		}
		data, err := typeurl.UnmarshalAny(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch s := data.(type) {
		case *v1stats.Metrics:
			if s.CPU == nil || s.CPU.Usage == nil || s.CPU.Usage.Total == 0 {
				t.Errorf("no CPU usage in the exited task's metrics: %+v", s.CPU)
			}
			if s.Memory == nil || s.Memory.Usage == nil || s.Memory.Usage.Max == 0 {
				t.Errorf("no peak memory usage in the exited task's metrics: %+v", s.Memory)
			}
			if s.Pids == nil || s.Pids.Current != 0 {
				t.Errorf("exited task's metrics count pids %+v, want 0", s.Pids)
			}
		case *v2stats.Metrics:
			if s.CPU == nil || s.CPU.UsageUsec == 0 {
				t.Errorf("no CPU usage in the exited task's metrics: %+v", s.CPU)
			}
		default:
			t.Fatalf("metrics of type %T", data)
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// cgroupDirs are the directories of cgroup name (below the root) in the
// hierarchies a test cgroup is made in.
func cgroupDirs(name string) []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{filepath.Join("/sys/fs/cgroup", name)}
	}
	return []string{filepath.Join("/sys/fs/cgroup/memory", name), filepath.Join("/sys/fs/cgroup/pids", name)}
}

// TestShimCgroupOption (issue 12, item 5): runc's ShimCgroup option puts the
// shim in that cgroup.
func TestShimCgroupOption(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		name := fmt.Sprintf("/hostnet-it-shimcg-%d-%s", os.Getpid(), v.name)
		dirs := cgroupDirs(name)
		for _, d := range dirs {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		var shimPid int
		// Runs after the container's removal, registered below.
		t.Cleanup(func() {
			if shimPid != 0 && !daemon.WaitGone(shimPid, 10*time.Second) {
				t.Errorf("shim %d still runs", shimPid)
			}
			for _, d := range dirs {
				if err := os.Remove(d); err != nil {
					t.Errorf("remove test cgroup: %v", err)
				}
			}
		})
		id := newID(t)
		opts := v.runcOptions("")
		opts.ShimCgroup = name
		c := newContainerWith(t, id, opts, client.WithNewSnapshot, testImage(t), nil, "sleep", "1000")
		task, exitc := startTask(t, c, cio.NullIO)
		shims, err := testDaemon.ShimPids()
		if err != nil {
			t.Fatal(err)
		}
		if shimPid = shims[id]; shimPid == 0 {
			t.Fatalf("no shim serves %s", id)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", shimPid))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			// "memory" or "pids"; "cgroup" for the unified hierarchy, whose
			// line in /proc/<pid>/cgroup names no controller.
			ctrl := filepath.Base(filepath.Dir(d))
			found := false
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.SplitN(line, ":", 3)
				if len(f) == 3 && f[2] == name && (ctrl == "cgroup" && f[1] == "" || slices.Contains(strings.Split(f[1], ","), ctrl)) {
					found = true
				}
			}
			if !found {
				t.Errorf("shim %d is not in cgroup %s:\n%s", shimPid, d, b)
			}
		}
		if err := task.Kill(t.Context(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitExit(t, "task", exitc, 30*time.Second)
		if _, err := task.Delete(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

const bareImageName = "docker.io/hostnet/busybox-bare:test"

var (
	bareImageOnce sync.Once
	bareImageErr  error
)

// bareImage is busybox alone in an image, without /etc/resolv.conf or
// /etc/hosts.
func bareImage(t *testing.T) client.Image {
	t.Helper()
	bareImageOnce.Do(func() {
		archive := filepath.Join(testDaemon.Dir, "busybox-bare.tar")
		if _, bareImageErr = image.WriteStaticFile(archive, image.StaticOptions{Binary: image.DefaultBusybox, Name: bareImageName}); bareImageErr != nil {
			return
		}
		bareImageErr = testDaemon.ImportImage(context.Background(), archive)
	})
	if bareImageErr != nil {
		t.Fatal(bareImageErr)
	}
	img, err := testClient.GetImage(t.Context(), bareImageName)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestHostModeReadOnlyRootfs (issue 12, item 6): a container on a read-only
// snapshot view starts in host mode. Its image's /etc/hosts and
// /etc/resolv.conf are covered by the host's; where the image has none,
// there is no mount point to bind them on and the container goes without,
// as under the runc shim, with a warning in the shim's log.
func TestHostModeReadOnlyRootfs(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		run := func(t *testing.T, img client.Image, args ...string) string {
			t.Helper()
			id := newID(t)
			// The bare image has no /run for containerd's default tmpfs.
			c := newContainerWith(t, id, v.runtimeOptions(), client.WithNewSnapshotView, img, []oci.SpecOpts{oci.WithoutMounts("/run")}, args...)
			// The shim writes the output to a file: through FIFOs, the
			// client may cancel its copy of a short task's output before
			// it has read it (it did once under load, with either runtime).
			logPath := filepath.Join(t.TempDir(), "out")
			task, exitc := startTask(t, c, cio.LogFile(logPath))
			st := waitExit(t, "task", exitc, time.Minute)
			if _, err := task.Delete(t.Context()); err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d, output %q", st.ExitCode(), out)
			}
			return string(out)
		}

		t.Run("image-without-files", func(t *testing.T) {
			before := strings.Count(testDaemon.LogTail(1000000), "has no /etc/resolv.conf to mount it on")
			out := run(t, bareImage(t), "/busybox", "sh", "-c",
				"/busybox touch /x 2>/dev/null && echo writable; /busybox ls /etc/resolv.conf /etc/hosts 2>&1; echo ran")
			if strings.Contains(out, "writable") || !strings.Contains(out, "ran") {
				t.Fatalf("the container's root is not read-only or it did not run: %q", out)
			}
			if testRuntime != daemon.HostnetRuntime {
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(testDaemon.LogTail(1000000), "has no /etc/resolv.conf to mount it on") == before {
				if time.Now().After(deadline) {
					t.Fatal("the shim did not warn that the container goes without /etc/resolv.conf")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})

		t.Run("image-with-files", func(t *testing.T) {
			out := run(t, testImage(t), "cat", "/etc/hosts")
			if hosts, _ := os.ReadFile("/etc/hosts"); testRuntime == daemon.HostnetRuntime && out != string(hosts) {
				t.Errorf("/etc/hosts in a read-only container:\n%s\nwant the host's:\n%s", out, hosts)
			}
		})
	})
}

// cpuLoad keeps every CPU busy with shell loops until the test ends.
func cpuLoad(t *testing.T) {
	t.Helper()
	for range runtime.NumCPU() {
		cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}

// eventLog records the task events of the test namespace by container.
type eventLog struct {
	mu     sync.Mutex
	byID   map[string][]taskEvent
	cancel context.CancelFunc
}

func recordEvents(t *testing.T) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{byID: map[string][]taskEvent{}, cancel: cancel}
	t.Cleanup(cancel)
	envs, errs := testClient.Subscribe(ctx, fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, testDaemon.Namespace))
	go func() {
		for {
			select {
			case env := <-envs:
				if v, err := typeurl.UnmarshalAny(env.Event); err == nil {
					e := decodeTaskEvent(v)
					l.mu.Lock()
					l.byID[e.ContainerID] = append(l.byID[e.ContainerID], e)
					l.mu.Unlock()
				}
			case <-errs:
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the subscription be set up
	return l
}

func (l *eventLog) of(id string) []taskEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byID[id])
}

// stressOp runs one step of the stress test with a deadline; a step that
// hangs fails the test instead of the whole run.
func stressOp(ctx context.Context, what string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := fn(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// TestShimStress (issue 12, item 1): under CPU load, containers run
// concurrent `ctr tasks exec`s, execs that are killed and deleted, execs
// that exit on their own, and execs started while the init is killed. Every
// step must finish, every exec's output and status arrive, and the events
// keep their order: each exec's exit before its container's, and the
// TaskDelete of every container. About 120 operations per runtime variant.
func TestShimStress(t *testing.T) {
	cpuLoad(t)
	events := recordEvents(t)
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		const containers, parallel = 5, 3
		ids := make([]string, containers)
		for i := range ids {
			ids[i] = newID(t)
		}
		var (
			mu   sync.Mutex
			errs []error
			ops  int
			wg   sync.WaitGroup
			sem  = make(chan struct{}, parallel)
		)
		fail := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}
		count := func(n int) {
			mu.Lock()
			defer mu.Unlock()
			ops += n
		}
		for _, id := range ids {
			c := newContainer(t, v, id, "sleep", "1000")
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := stressContainer(t.Context(), c, id, count); err != nil {
					fail(fmt.Errorf("container %s: %w", id, err))
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		t.Logf("%d operations", ops)
		if len(errs) > 0 {
			return
		}

		// The runc shim may exit before it has published TaskDelete (its
		// events go out asynchronously and nothing waits for them at
		// shutdown); the hostnet shim flushes them.
		wantDelete := testRuntime == daemon.HostnetRuntime
		for _, id := range ids {
			deadline := time.Now().Add(30 * time.Second)
			for wantDelete && !slices.ContainsFunc(events.of(id), func(e taskEvent) bool { return e.Type == "TaskDelete" }) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			checkStressEvents(t, id, events.of(id), wantDelete)
		}
	})
}

// stressContainer runs one container of TestShimStress through its steps.
func stressContainer(ctx context.Context, c client.Container, id string, count func(int)) error {
	var task client.Task
	var initExit <-chan client.ExitStatus
	if err := stressOp(ctx, "start", func(ctx context.Context) (err error) {
		if task, err = c.NewTask(ctx, cio.NullIO); err != nil {
			return err
		}
		if initExit, err = task.Wait(context.Background()); err != nil {
			return err
		}
		return task.Start(ctx)
	}); err != nil {
		return err
	}
	count(2)
	spec, err := c.Spec(ctx)
	if err != nil {
		return err
	}
	execSpec := func(args ...string) *specs.Process {
		p := *spec.Process
		p.Args, p.Terminal = args, false
		return &p
	}

	var wg sync.WaitGroup
	errc := make(chan error, 32)
	// `ctr tasks exec` with its output: the client whose fifo open hung.
	for i := range 3 {
		wg.Go(func() {
			eid := fmt.Sprintf("ctr-%d", i)
			errc <- stressOp(ctx, "ctr exec "+eid, func(ctx context.Context) error {
				out, err := testDaemon.CtrOutput(ctx, "tasks", "exec", "--exec-id", eid, id, "sh", "-c", "echo out-"+eid)
				if err != nil {
					return err
				}
				if out != "out-"+eid+"\n" {
					return fmt.Errorf("output %q", out)
				}
				return nil
			})
			count(1)
		})
	}
	// Execs that run until killed, then are deleted.
	for i := range 2 {
		wg.Go(func() {
			eid := fmt.Sprintf("killed-%d", i)
			errc <- stressOp(ctx, "exec "+eid, func(ctx context.Context) error {
				return execAndKill(ctx, task, eid, execSpec("sleep", "1000"))
			})
			count(3)
		})
	}
	// An exec that exits on its own.
	wg.Go(func() {
		errc <- stressOp(ctx, "exec exits", func(ctx context.Context) error {
			p, exitc, err := addExec(ctx, task, "exits", execSpec("sh", "-c", "exit 5"))
			if err != nil {
				return err
			}
			if err := p.Start(ctx); err != nil {
				return err
			}
			if err := exitStatus(ctx, exitc, 5); err != nil {
				return err
			}
			_, err = p.Delete(ctx)
			return err
		})
		count(3)
	})
	wg.Wait()

	// Execs started while the init is killed: each either fails to start
	// or runs, is killed with the container and reports its exit.
	for i := range 2 {
		wg.Go(func() {
			eid := fmt.Sprintf("racing-%d", i)
			errc <- stressOp(ctx, "exec "+eid, func(ctx context.Context) error {
				p, exitc, err := addExec(ctx, task, eid, execSpec("sleep", "1000"))
				if err != nil {
					return err
				}
				if err := p.Start(ctx); err != nil {
					_, derr := p.Delete(ctx)
					return derr
				}
				if err := exitStatus(ctx, exitc, -1); err != nil {
					return fmt.Errorf("started as the init died: %w", err)
				}
				_, err = p.Delete(ctx)
				return err
			})
			count(3)
		})
	}
	wg.Go(func() {
		errc <- stressOp(ctx, "kill init", func(ctx context.Context) error {
			return task.Kill(ctx, syscall.SIGKILL)
		})
		count(1)
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return stressOp(ctx, "delete", func(ctx context.Context) error {
		select {
		case st := <-initExit:
			if st.ExitCode() != 128+9 {
				return fmt.Errorf("init exit %d", st.ExitCode())
			}
		case <-ctx.Done():
			return errors.New("the init's exit was never reported")
		}
		count(1)
		_, err := task.Delete(ctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		return nil
	})
}

// addExec adds exec eid, without stdio, to task and waits for its exit.
func addExec(ctx context.Context, task client.Task, eid string, spec *specs.Process) (client.Process, <-chan client.ExitStatus, error) {
	p, err := task.Exec(ctx, eid, spec, cio.NullIO)
	if err != nil {
		return nil, nil, err
	}
	exitc, err := p.Wait(context.Background())
	if err != nil {
		return nil, nil, err
	}
	return p, exitc, nil
}

// exitStatus waits for an exit with status want, any if want is -1.
func exitStatus(ctx context.Context, exitc <-chan client.ExitStatus, want int) error {
	select {
	case st := <-exitc:
		if want >= 0 && st.ExitCode() != uint32(want) {
			return fmt.Errorf("exit %d, want %d", st.ExitCode(), want)
		}
		return nil
	case <-ctx.Done():
		return errors.New("the exec never exited")
	}
}

// execAndKill starts exec eid, kills it and deletes it.
func execAndKill(ctx context.Context, task client.Task, eid string, spec *specs.Process) error {
	p, exitc, err := addExec(ctx, task, eid, spec)
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	if err := p.Kill(ctx, syscall.SIGKILL); err != nil {
		return err
	}
	if err := exitStatus(ctx, exitc, 128+9); err != nil {
		return err
	}
	_, err = p.Delete(ctx)
	return err
}

// checkStressEvents checks one container's events: every started exec
// exited exactly once, before the init, and, if wantDelete, TaskDelete came
// last.
func checkStressEvents(t *testing.T, id string, got []taskEvent, wantDelete bool) {
	t.Helper()
	initExit := slices.IndexFunc(got, func(e taskEvent) bool { return e.Type == "TaskExit" && e.ID == id })
	if initExit < 0 {
		t.Errorf("%s: no init TaskExit: %v", id, got)
		return
	}
	if wantDelete && got[len(got)-1].Type != "TaskDelete" {
		t.Errorf("%s: TaskDelete missing or not last: %v", id, got)
	}
	exits := map[string]int{}
	for i, e := range got {
		if e.Type == "TaskExit" && e.ID != id {
			exits[e.ID]++
			if i > initExit {
				t.Errorf("%s: exec %s exited after the init: %v", id, e.ID, got)
			}
		}
	}
	for _, e := range got {
		if e.Type == "TaskExecStarted" && exits[e.ID] != 1 {
			t.Errorf("%s: exec %s started and has %d TaskExits: %v", id, e.ID, exits[e.ID], got)
		}
	}
}
