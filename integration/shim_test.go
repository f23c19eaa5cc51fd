package integration

// Tests of the shim's task API (exec, pause/resume, kill, pids, metrics,
// update, CloseIO, events, logging) against the real containerd. Each test
// runs once per OCI runtime binary the hostnet shim can drive: its own
// hostnet-runc, and runc given through hostnet's TOML config
// ([runtime] binary = ...). Against the stock runc shim
// (HOSTNET_TEST_RUNTIME=io.containerd.runc.v2) they run once, unchanged.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/console"
	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// runtimeVariant is one OCI runtime binary the shim under test drives.
type runtimeVariant struct {
	name string
	// binary is the OCI runtime, for `<binary> --root ... state <id>`.
	binary string
	// configPath is hostnet's TOML config selecting binary, handed to the
	// shim as runtime options; empty for the shim's default.
	configPath string
}

// ctrFlags are the extra `ctr run` flags selecting the variant.
func (v runtimeVariant) ctrFlags() []string {
	if v.configPath == "" {
		return nil
	}
	return []string{"--runtime-config-path", v.configPath}
}

// runtimeOptions are the client's runtime options selecting the variant.
func (v runtimeVariant) runtimeOptions() any {
	if v.configPath == "" {
		return nil
	}
	return &runtimeoptions.Options{ConfigPath: v.configPath}
}

var (
	runcConfigOnce sync.Once
	runcBinary     string
	runcConfig     string
	runcConfigErr  error
)

// runtimeVariants lists the runtimes the task API tests run with.
func runtimeVariants(t *testing.T) []runtimeVariant {
	t.Helper()
	if testRuntime != daemon.HostnetRuntime {
		return []runtimeVariant{{name: "stock-shim", binary: "runc"}}
	}
	runcConfigOnce.Do(func() {
		runcBinary, runcConfigErr = referenceRunc()
		if runcConfigErr != nil {
			return
		}
		runcConfig = filepath.Join(testDaemon.Dir, "runtime-runc.toml")
		runcConfigErr = os.WriteFile(runcConfig, fmt.Appendf(nil, "[runtime]\nbinary = %q\n", runcBinary), 0o644)
	})
	if runcConfigErr != nil {
		t.Fatalf("runc variant: %v", runcConfigErr)
	}
	return []runtimeVariant{
		{name: "hostnet-runc", binary: filepath.Join(binDir, "hostnet-runc")},
		{name: "runc", binary: runcBinary, configPath: runcConfig},
	}
}

// referenceRunc is the runc the runc variant runs: v1.5.2, the reference,
// where contrib/setup.sh builds it, else Debian's, else the one on $PATH.
func referenceRunc() (string, error) {
	for _, p := range []string{"/var/cache/hostnet/runc-v1.5.2/bin/runc", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("runc")
}

// forEachRuntime runs f as one subtest per runtime variant.
func forEachRuntime(t *testing.T, f func(t *testing.T, v runtimeVariant)) {
	for _, v := range runtimeVariants(t) {
		t.Run(v.name, func(t *testing.T) { f(t, v) })
	}
}

// syncBuffer is a bytes.Buffer safe for the copy goroutines of cio.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newContainer creates container id running args with the variant's
// runtime, through the Go client.
func newContainer(t *testing.T, v runtimeVariant, id string, args ...string) client.Container {
	t.Helper()
	ctx := t.Context()
	img, err := testClient.GetImage(ctx, image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}
	if testRuntime != daemon.HostnetRuntime {
		specOpts = append(specOpts, oci.WithHostNamespace(specs.NetworkNamespace))
	}
	c, err := testClient.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(testRuntime, v.runtimeOptions()),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startTask creates and starts c's task with the given IO and returns it
// with its exit channel.
func startTask(t *testing.T, c client.Container, ioc cio.Creator) (client.Task, <-chan client.ExitStatus) {
	t.Helper()
	ctx := t.Context()
	task, err := c.NewTask(ctx, ioc)
	if err != nil {
		t.Fatal(err)
	}
	exitc, err := task.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return task, exitc
}

// startSleeper starts a container whose init sleeps, with no IO.
func startSleeper(t *testing.T, v runtimeVariant, id string) (client.Container, client.Task, <-chan client.ExitStatus) {
	t.Helper()
	c := newContainer(t, v, id, "sleep", "1000")
	task, exitc := startTask(t, c, cio.NullIO)
	return c, task, exitc
}

// streams is cio for the given streams, with FIFOs in the daemon's FIFO dir.
func streams(stdin io.Reader, stdout, stderr io.Writer, opts ...cio.Opt) cio.Creator {
	return cio.NewCreator(append([]cio.Opt{cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(testDaemon.FIFODir)}, opts...)...)
}

// processSpec is the container's process spec with other args.
func processSpec(t *testing.T, c client.Container, args ...string) *specs.Process {
	t.Helper()
	s, err := c.Spec(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p := *s.Process
	p.Args = args
	p.Terminal = false
	return &p
}

// startExec adds and starts exec execID running args in task.
func startExec(t *testing.T, c client.Container, task client.Task, execID string, ioc cio.Creator, tty bool, args ...string) (client.Process, <-chan client.ExitStatus) {
	t.Helper()
	ctx := t.Context()
	ps := processSpec(t, c, args...)
	ps.Terminal = tty
	p, err := task.Exec(ctx, execID, ps, ioc)
	if err != nil {
		t.Fatalf("exec %s: %v", execID, err)
	}
	exitc, err := p.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("start exec %s: %v", execID, err)
	}
	return p, exitc
}

// waitExit waits for an exit status.
func waitExit(t *testing.T, what string, exitc <-chan client.ExitStatus, timeout time.Duration) client.ExitStatus {
	t.Helper()
	select {
	case st := <-exitc:
		if err := st.Error(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return st
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", what, timeout)
	}
	panic("unreachable")
}

// ctrTaskStatus returns the STATUS column of `ctr tasks ls` for id.
func ctrTaskStatus(t *testing.T, id string) (pid int, status string) {
	t.Helper()
	out := mustCtr(t, "tasks", "ls")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid, f[2]
		}
	}
	t.Fatalf("`ctr tasks ls` does not list %s:\n%s", id, out)
	return 0, ""
}

// TestShimExec: execs with and without a terminal, through the client and
// ctr, report their output and exit codes; an exec of a missing binary fails
// with an error naming it and leaves the container running.
func TestShimExec(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, _ := startSleeper(t, v, id)

		t.Run("client-no-tty", func(t *testing.T) {
			var stdout, stderr syncBuffer
			p, exitc := startExec(t, c, task, "notty", streams(nil, &stdout, &stderr), false,
				"sh", "-c", "echo out-$((6*7)); echo err-$((6*7)) >&2; [ -t 1 ] && echo has-tty; exit 5")
			st := waitExit(t, "exec notty", exitc, time.Minute)
			if _, err := p.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			if st.ExitCode() != 5 {
				t.Errorf("exec exit code %d, want 5", st.ExitCode())
			}
			if got := stdout.String(); got != "out-42\n" {
				t.Errorf("exec stdout %q, want %q", got, "out-42\n")
			}
			if got := stderr.String(); got != "err-42\n" {
				t.Errorf("exec stderr %q, want %q", got, "err-42\n")
			}
		})

		t.Run("client-tty", func(t *testing.T) {
			var out syncBuffer
			// The loop waits for the resize below to reach the terminal.
			p, exitc := startExec(t, c, task, "tty", streams(nil, &out, nil, cio.WithTerminal), true, "sh", "-c",
				`[ -t 0 ] && [ -t 1 ] && tty; for i in $(seq 100); do s=$(stty size); [ "$s" = "33 77" ] && break; sleep 0.1; done; echo "size=$s"; exit 4`)
			if err := p.Resize(ctx, 77, 33); err != nil {
				t.Errorf("resize: %v", err)
			}
			st := waitExit(t, "exec tty", exitc, time.Minute)
			if _, err := p.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(out.String(), "\r", "")
			if st.ExitCode() != 4 {
				t.Errorf("tty exec exit code %d, want 4; output %q", st.ExitCode(), got)
			}
			if !strings.Contains(got, "/dev/pts/") {
				t.Errorf("tty exec has no terminal on stdin/stdout; output %q", got)
			}
			if !strings.Contains(got, "size=33 77") {
				t.Errorf("terminal was not resized to 33x77; output %q", got)
			}
		})

		t.Run("ctr", func(t *testing.T) {
			out := mustCtr(t, "tasks", "exec", "--exec-id", "ctr-ok", id, "sh", "-c", "echo hello-$((1+1))")
			if strings.TrimSpace(out) != "hello-2" {
				t.Errorf("ctr tasks exec output %q, want hello-2", out)
			}
			_, err := testDaemon.CtrOutput(ctx, "tasks", "exec", "--exec-id", "ctr-exit", id, "sh", "-c", "exit 3")
			var ce *daemon.CtrError
			if !errors.As(err, &ce) || ce.ExitCode() != 3 {
				t.Errorf("ctr tasks exec of `exit 3`: %v, want exit status 3", err)
			}
		})

		t.Run("ctr-tty", func(t *testing.T) {
			pty, slave, err := console.NewPty()
			if err != nil {
				t.Fatal(err)
			}
			defer pty.Close()
			sf, err := os.OpenFile(slave, os.O_RDWR|syscall.O_NOCTTY, 0)
			if err != nil {
				t.Fatal(err)
			}
			cmd := testDaemon.Ctr(ctx, "tasks", "exec", "-t", "--exec-id", "ctr-tty", id, "sh", "-c", "tty; exit 6")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = sf, sf, sf
			if err := cmd.Start(); err != nil {
				sf.Close()
				t.Fatal(err)
			}
			sf.Close()
			var out syncBuffer
			copied := make(chan struct{})
			go func() { io.Copy(&out, pty); close(copied) }()
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 6 {
				t.Errorf("ctr tasks exec -t: %v, want exit status 6; output %q", err, out.String())
			}
			// The copy ends with EIO once every slave fd is closed.
			select {
			case <-copied:
			case <-time.After(10 * time.Second):
				pty.Close()
			}
			if got := out.String(); !strings.Contains(got, "/dev/pts/") {
				t.Errorf("ctr tasks exec -t output %q has no /dev/pts/ terminal", got)
			}
		})

		t.Run("missing-binary", func(t *testing.T) {
			_, err := testDaemon.CtrOutput(ctx, "tasks", "exec", "--exec-id", "missing", id, "nosuchbinary-hn")
			if err == nil {
				t.Fatal("exec of a missing binary succeeded")
			}
			if !strings.Contains(err.Error(), "nosuchbinary-hn") {
				t.Errorf("error does not name the missing binary: %v", err)
			}
			// The container is unaffected and the failed exec is not left
			// among its processes.
			if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
				t.Errorf("after the failed exec, task status %v (err=%v), want running", st.Status, err)
			}
			pids, err := task.Pids(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(pids) != 1 || pids[0].Pid != task.Pid() {
				t.Errorf("after the failed exec, pids %v, want only init %d", pids, task.Pid())
			}
			// A second exec with the same id works: the failed one is gone.
			out := mustCtr(t, "tasks", "exec", "--exec-id", "missing", id, "echo", "reused")
			if strings.TrimSpace(out) != "reused" {
				t.Errorf("exec reusing the failed exec's id printed %q", out)
			}
		})
	})
}

// TestShimPauseResume: pause freezes every process of the container (a
// counter loop stops advancing) and reports PAUSED; resume lets it go on
// and reports RUNNING.
// pidsCurrent is the pids controller's count in cgroup v1 or v2 metrics,
// -1 when they have none.
func pidsCurrent(metrics any) int64 {
	switch s := metrics.(type) {
	case *v1stats.Metrics:
		if s.Pids != nil {
			return int64(s.Pids.Current)
		}
	case *v2stats.Metrics:
		if s.Pids != nil {
			return int64(s.Pids.Current)
		}
	}
	return -1
}

func TestShimPauseResume(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c := newContainer(t, v, id, "sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.02; done`)
		task, _ := startTask(t, c, cio.NullIO)
		counterFile := filepath.Join(testDaemon.TaskDir(id), "rootfs", "tmp", "counter")
		counter := func() int {
			// The shell renames each value into place, so a pause never
			// leaves the file empty; the first read waits for the shell
			// to start, slow under load.
			for range 1000 {
				b, _ := os.ReadFile(counterFile)
				if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					return n
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Fatalf("no counter in %s", counterFile)
			return 0
		}
		waitAdvance := func(what string) {
			t.Helper()
			start := counter()
			deadline := time.Now().Add(10 * time.Second)
			for counter() <= start+2 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: counter stuck at %d", what, start)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitAdvance("running")

		if err := task.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := task.Status(ctx); err != nil || st.Status != client.Paused {
			t.Errorf("after pause: status %v (err=%v), want paused", st.Status, err)
		}
		if _, status := ctrTaskStatus(t, id); status != "PAUSED" {
			t.Errorf("ctr tasks ls: %s, want PAUSED", status)
		}
		a := counter()
		time.Sleep(500 * time.Millisecond)
		if b := counter(); a != b {
			t.Errorf("counter went from %d to %d while paused", a, b)
		}

		if err := task.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
			t.Errorf("after resume: status %v (err=%v), want running", st.Status, err)
		}
		if _, status := ctrTaskStatus(t, id); status != "RUNNING" {
			t.Errorf("ctr tasks ls: %s, want RUNNING", status)
		}
		waitAdvance("resumed")
	})
}

// TestShimKill: killing an exec ends only that exec, with 128+signal;
// killing init ends the task.
func TestShimKill(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, initExit := startSleeper(t, v, id)
		p, execExit := startExec(t, c, task, "victim", cio.NullIO, false, "sleep", "1000")

		mustCtr(t, "tasks", "kill", "--exec-id", "victim", "--signal", "SIGKILL", id)
		if st := waitExit(t, "killed exec", execExit, 30*time.Second); st.ExitCode() != 128+9 {
			t.Errorf("killed exec exited %d, want %d", st.ExitCode(), 128+9)
		}
		if !daemon.WaitGone(int(p.Pid()), 10*time.Second) {
			t.Errorf("exec pid %d still alive after SIGKILL", p.Pid())
		}
		if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
			t.Errorf("after killing the exec: init status %v (err=%v), want running", st.Status, err)
		}
		if _, err := p.Delete(ctx); err != nil {
			t.Errorf("delete killed exec: %v", err)
		}

		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if st := waitExit(t, "killed init", initExit, 30*time.Second); st.ExitCode() != 128+9 {
			t.Errorf("killed init exited %d, want %d", st.ExitCode(), 128+9)
		}
		if _, status := ctrTaskStatus(t, id); status != "STOPPED" {
			t.Errorf("ctr tasks ls: %s after killing init, want STOPPED", status)
		}
		st, err := task.Delete(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.ExitCode() != 128+9 {
			t.Errorf("delete reports exit %d, want %d", st.ExitCode(), 128+9)
		}
	})
}

// TestShimPids: Pids lists init and a running exec, with the exec's id; ctr
// tasks ps shows both; the runtime binary of the variant is the one that
// really runs the container.
func TestShimPids(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, _ := startSleeper(t, v, id)
		p, execExit := startExec(t, c, task, "second", cio.NullIO, false, "sleep", "1000")

		pids, err := task.Pids(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint32
		for _, pi := range pids {
			got = append(got, pi.Pid)
		}
		for _, want := range []uint32{task.Pid(), p.Pid()} {
			if !slices.Contains(got, want) {
				t.Errorf("Pids %v lacks %d (init %d, exec %d)", got, want, task.Pid(), p.Pid())
			}
		}
		if len(got) != 2 {
			t.Errorf("Pids %v, want exactly init and the exec", got)
		}
		out := mustCtr(t, "tasks", "ps", id)
		for _, want := range []uint32{task.Pid(), p.Pid()} {
			if !psListsPid(out, want) {
				t.Errorf("`ctr tasks ps` lacks pid %d:\n%s", want, out)
			}
		}

		if v.binary != "" && testRuntime == daemon.HostnetRuntime {
			state, err := exec.CommandContext(ctx, v.binary, "--root", testDaemon.RuntimeStateRoot(testRuntime, runtimeRoot), "state", id).Output()
			if err != nil {
				t.Fatalf("%s state %s: %v: the container does not belong to this runtime", v.binary, id, err)
			}
			var s struct {
				Pid    int    `json:"pid"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(state, &s); err != nil {
				t.Fatal(err)
			}
			if s.Pid != int(task.Pid()) || s.Status != "running" {
				t.Errorf("%s state: pid %d status %s, want pid %d running", v.binary, s.Pid, s.Status, task.Pid())
			}
		}
		if err := p.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitExit(t, "exec", execExit, 30*time.Second)
	})
}

func psListsPid(out string, pid uint32) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == strconv.Itoa(int(pid)) {
			return true
		}
	}
	return false
}

// TestShimMetrics: Metrics returns the container's cgroup statistics, with a
// memory usage above zero and the container's process count.
func TestShimMetrics(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		_, task, _ := startSleeper(t, v, id)
		// `start` returns before the runtime's init has exec'd sleep, and
		// pids.current counts its threads until then.
		var m *types.Metric
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var err error
			if m, err = task.Metrics(ctx); err != nil {
				t.Fatal(err)
			}
			data, err := typeurl.UnmarshalAny(m.Data)
			if err != nil || pidsCurrent(data) == 1 || time.Now().After(deadline) {
				break
			}
		}
		if m.ID != id {
			t.Errorf("metrics of %q, want %q", m.ID, id)
		}
		data, err := typeurl.UnmarshalAny(m.Data)
		if err != nil {
			t.Fatalf("decode metrics %s: %v", m.Data.GetTypeUrl(), err)
		}
		switch s := data.(type) {
		case *v1stats.Metrics:
			if s.Memory == nil || s.Memory.Usage == nil || s.Memory.Usage.Usage == 0 {
				t.Errorf("cgroup v1 metrics: no memory usage: %+v", s.Memory)
			}
			if s.Pids == nil || s.Pids.Current != 1 {
				t.Errorf("cgroup v1 metrics: pids %+v, want current 1 (the sleep)", s.Pids)
			}
			if s.CPU == nil || s.CPU.Usage == nil || s.CPU.Usage.Total == 0 {
				t.Errorf("cgroup v1 metrics: no CPU usage: %+v", s.CPU)
			}
		case *v2stats.Metrics:
			if s.Memory == nil || s.Memory.Usage == 0 {
				t.Errorf("cgroup v2 metrics: no memory usage: %+v", s.Memory)
			}
			// Counted even without a limit: every controller is enabled.
			if s.Pids == nil || s.Pids.Current != 1 {
				t.Errorf("cgroup v2 metrics: pids %+v, want current 1 (the sleep)", s.Pids)
			}
			if s.CPU == nil || s.CPU.UsageUsec == 0 {
				t.Errorf("cgroup v2 metrics: no CPU usage: %+v", s.CPU)
			}
		default:
			t.Fatalf("metrics of type %T, want cgroups stats", data)
		}
		if _, err := testDaemon.CtrOutput(ctx, "tasks", "metrics", id); err != nil {
			t.Errorf("ctr tasks metrics: %v", err)
		}
	})
}

// TestShimUpdate: Update sets the container's memory limit in its cgroup.
func TestShimUpdate(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c, task, _ := startSleeper(t, v, id)
		s, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		limitFile := filepath.Join("/sys/fs/cgroup/memory", s.Linux.CgroupsPath, "memory.limit_in_bytes")
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			limitFile = filepath.Join("/sys/fs/cgroup", s.Linux.CgroupsPath, "memory.max")
		}
		read := func() int64 {
			b, err := os.ReadFile(limitFile)
			if err != nil {
				t.Fatalf("container's memory cgroup: %v", err)
			}
			if strings.TrimSpace(string(b)) == "max" {
				return -1
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, limit := range []int64{64 << 20, 96 << 20} {
			if read() == limit {
				t.Fatalf("%s is already %d before the update", limitFile, limit)
			}
			if err := task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})); err != nil {
				t.Fatalf("update memory limit to %d: %v", limit, err)
			}
			if got := read(); got != limit {
				t.Errorf("%s = %d after update, want %d", limitFile, got, limit)
			}
		}
		if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
			t.Errorf("after update: status %v (err=%v), want running", st.Status, err)
		}
	})
}

// TestShimCloseIO: CloseIO closes the stdin of an exec and of init, and
// `cat` reading it exits, after echoing what it read.
func TestShimCloseIO(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		c := newContainer(t, v, id, "cat")
		initIn, initInW := io.Pipe()
		t.Cleanup(func() { initInW.Close() })
		var initOut, initErr syncBuffer
		task, initExit := startTask(t, c, streams(initIn, &initOut, &initErr))

		echo := func(name string, w io.Writer, out, errb *syncBuffer, exitc <-chan client.ExitStatus) {
			t.Helper()
			go fmt.Fprintf(w, "hello %s\n", name)
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(out.String(), "hello "+name) {
				select {
				case st := <-exitc:
					t.Fatalf("%s cat exited with %d before echoing its stdin (stdout %q, stderr %q)", name, st.ExitCode(), out.String(), errb.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: stdin never reached cat (stdout %q, stderr %q)", name, out.String(), errb.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		echo("init", initInW, &initOut, &initErr, initExit)

		execIn, execInW := io.Pipe()
		t.Cleanup(func() { execInW.Close() })
		var execOut, execErr syncBuffer
		p, execExit := startExec(t, c, task, "cat", streams(execIn, &execOut, &execErr), false, "cat")
		echo("exec", execInW, &execOut, &execErr, execExit)

		// The client closes its end of stdin, as cio does on EOF of the
		// caller's stdin. The shim holds the fifo open until CloseIO, so
		// that a client can reattach: cat must still be running.
		execInW.Close()
		select {
		case st := <-execExit:
			t.Fatalf("exec cat exited (%d) before CloseIO", st.ExitCode())
		case <-time.After(300 * time.Millisecond):
		}
		if err := p.CloseIO(ctx, client.WithStdinCloser); err != nil {
			t.Fatal(err)
		}
		if st := waitExit(t, "exec cat after CloseIO", execExit, 30*time.Second); st.ExitCode() != 0 {
			t.Errorf("exec cat exited %d, want 0", st.ExitCode())
		}
		if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
			t.Errorf("closing the exec's stdin affected init: %v (err=%v)", st.Status, err)
		}
		if _, err := p.Delete(ctx); err != nil {
			t.Error(err)
		}

		initInW.Close()
		if err := task.CloseIO(ctx, client.WithStdinCloser); err != nil {
			t.Fatal(err)
		}
		if st := waitExit(t, "init cat after CloseIO", initExit, 30*time.Second); st.ExitCode() != 0 {
			t.Errorf("init cat exited %d, want 0", st.ExitCode())
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Error(err)
		}
	})
}

// taskEvent is a decoded /tasks/* event, reduced to what order checks need.
type taskEvent struct {
	Type        string
	ContainerID string
	ID          string // exec id, or the container id for init
	Pid         uint32
	ExitStatus  uint32
}

func (e taskEvent) String() string {
	return fmt.Sprintf("%s{container=%s id=%s pid=%d status=%d}", e.Type, e.ContainerID, e.ID, e.Pid, e.ExitStatus)
}

func decodeTaskEvent(v any) taskEvent {
	switch e := v.(type) {
	case *eventstypes.TaskCreate:
		return taskEvent{Type: "TaskCreate", ContainerID: e.ContainerID, Pid: e.Pid}
	case *eventstypes.TaskStart:
		return taskEvent{Type: "TaskStart", ContainerID: e.ContainerID, Pid: e.Pid}
	case *eventstypes.TaskExecAdded:
		return taskEvent{Type: "TaskExecAdded", ContainerID: e.ContainerID, ID: e.ExecID}
	case *eventstypes.TaskExecStarted:
		return taskEvent{Type: "TaskExecStarted", ContainerID: e.ContainerID, ID: e.ExecID, Pid: e.Pid}
	case *eventstypes.TaskExit:
		return taskEvent{Type: "TaskExit", ContainerID: e.ContainerID, ID: e.ID, Pid: e.Pid, ExitStatus: e.ExitStatus}
	case *eventstypes.TaskDelete:
		return taskEvent{Type: "TaskDelete", ContainerID: e.ContainerID, ID: e.ID, Pid: e.Pid, ExitStatus: e.ExitStatus}
	case *eventstypes.TaskPaused:
		return taskEvent{Type: "TaskPaused", ContainerID: e.ContainerID}
	case *eventstypes.TaskResumed:
		return taskEvent{Type: "TaskResumed", ContainerID: e.ContainerID}
	case *eventstypes.TaskOOM:
		return taskEvent{Type: "TaskOOM", ContainerID: e.ContainerID}
	}
	return taskEvent{Type: fmt.Sprintf("%T", v)}
}

// subscribeTasks subscribes to the /tasks/ events of the test namespace and
// returns the decoded events of container id as they come.
func subscribeTasks(t *testing.T, id string) <-chan taskEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	filter := fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, testDaemon.Namespace)
	envs, errs := testClient.Subscribe(ctx, filter)
	out := make(chan taskEvent, 100)
	go func() {
		defer close(out)
		for {
			select {
			case env := <-envs:
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					t.Errorf("decode event %s: %v", env.Topic, err)
					continue
				}
				if e := decodeTaskEvent(v); e.ContainerID == id {
					out <- e
				}
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					t.Errorf("event subscription: %v", err)
				}
				return
			}
		}
	}()
	// Subscribe is asynchronous: give the stream a moment to be set up.
	time.Sleep(100 * time.Millisecond)
	return out
}

// TestShimEventsOrder: the task events of a container with one exec come
// exactly once each, in order: create, start, exec added, exec started, exec
// exit, init exit, delete.
func TestShimEventsOrder(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		ctx := t.Context()
		id := newID(t)
		events := subscribeTasks(t, id)

		c, task, initExit := startSleeper(t, v, id)
		p, execExit := startExec(t, c, task, "ev-exec", cio.NullIO, false, "sh", "-c", "exit 3")
		waitExit(t, "exec", execExit, 30*time.Second)
		if _, err := p.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitExit(t, "init", initExit, 30*time.Second)
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}

		initPid, execPid := task.Pid(), p.Pid()
		want := []taskEvent{
			{Type: "TaskCreate", ContainerID: id, Pid: initPid},
			{Type: "TaskStart", ContainerID: id, Pid: initPid},
			{Type: "TaskExecAdded", ContainerID: id, ID: "ev-exec"},
			{Type: "TaskExecStarted", ContainerID: id, ID: "ev-exec", Pid: execPid},
			{Type: "TaskExit", ContainerID: id, ID: "ev-exec", Pid: execPid, ExitStatus: 3},
			{Type: "TaskExit", ContainerID: id, ID: id, Pid: initPid, ExitStatus: 128 + 9},
			// Like the runc shim's, TaskDelete carries no process id.
			{Type: "TaskDelete", ContainerID: id, Pid: initPid, ExitStatus: 128 + 9},
		}
		var got []taskEvent
		timeout := time.After(30 * time.Second)
	collect:
		for {
			select {
			case e := <-events:
				got = append(got, e)
				if e.Type == "TaskDelete" {
					// Wait a little for duplicates or stragglers.
					timeout = time.After(time.Second)
				}
			case <-timeout:
				break collect
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("task events:\n got %v\nwant %v", got, want)
		}
	})
}

var (
	loggerOnce sync.Once
	loggerPath string
	loggerErr  error
)

// buildLogger builds testdata/logger, a shim logging binary.
func buildLogger(t *testing.T) string {
	t.Helper()
	loggerOnce.Do(func() {
		loggerPath, loggerErr = buildTestTool(context.Background(), "logger", testDaemon.Dir)
	})
	if loggerErr != nil {
		t.Fatal(loggerErr)
	}
	return loggerPath
}

// waitFileLines polls path until it contains every line of want.
func waitFileLines(t *testing.T, path string, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var lines []string
		if f, err := os.Open(path); err == nil {
			s := bufio.NewScanner(f)
			for s.Scan() {
				lines = append(lines, s.Text())
			}
			f.Close()
		}
		missing := false
		for _, w := range want {
			missing = missing || !slices.Contains(lines, w)
		}
		if !missing {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want lines %q, have %q", path, want, lines)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShimLogging: `ctr run --log-uri` sends the container's stdout and
// stderr to a file (file://) and to a logging binary (binary://) that gets
// the container's id and namespace.
func TestShimLogging(t *testing.T) {
	logger := buildLogger(t)
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) {
		const script = "echo to-stdout; echo to-stderr >&2; echo more-stdout"
		run := func(t *testing.T, id, uri string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			extra := append([]string{"--rm", "--log-uri", uri}, v.ctrFlags()...)
			if _, err := testDaemon.CtrOutput(ctx, ctrRunArgs(extra, id, "sh", "-c", script)...); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("file", func(t *testing.T) {
			id := newID(t)
			path := filepath.Join(t.TempDir(), "container.log")
			run(t, id, "file://"+path)
			lines := waitFileLines(t, path, "to-stdout", "to-stderr", "more-stdout")
			if i, j := slices.Index(lines, "to-stdout"), slices.Index(lines, "more-stdout"); i > j {
				t.Errorf("stdout lines out of order: %q", lines)
			}
		})

		t.Run("binary", func(t *testing.T) {
			id := newID(t)
			path := filepath.Join(t.TempDir(), "container.log")
			run(t, id, "binary://"+logger+"?file="+url.QueryEscape(path))
			lines := waitFileLines(t, path,
				fmt.Sprintf("logger id=%s namespace=%s", id, testDaemon.Namespace),
				"stdout: to-stdout", "stderr: to-stderr", "stdout: more-stdout")
			if i, j := slices.Index(lines, "stdout: to-stdout"), slices.Index(lines, "stdout: more-stdout"); i > j {
				t.Errorf("stdout lines out of order: %q", lines)
			}
		})
	})
}
