package task

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/fifo"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/bundle"
)

// These tests drive the task service directly, without containerd, against
// real containers run by hostnet-runc from a busybox root filesystem.

var (
	runtimeBinary string // built by TestMain
	rootfs        string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	busybox, err := exec.LookPath("busybox")
	if os.Geteuid() != 0 || err != nil {
		fmt.Println("skipping container tests: they need root and a static busybox")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hostnet-task-test-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	// As `make integration` does, HOSTNET_RUNC may name a runtime built
	// already.
	runtimeBinary = os.Getenv("HOSTNET_RUNC")
	if runtimeBinary == "" {
		runtimeBinary = filepath.Join(dir, "hostnet-runc")
		build := exec.Command("go", "build", "-o", runtimeBinary, "github.com/hostnet-dev/hostnet/runtime/cmd/hostnet-runc")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Printf("building hostnet-runc: %v\n%s", err, out)
			return 1
		}
	}
	rootfs = filepath.Join(dir, "rootfs")
	if err := makeRootfs(rootfs, busybox); err != nil {
		fmt.Println(err)
		return 1
	}
	// Like the shim: container processes are re-parented to this process,
	// and every child is reaped through the reaper, never by os/exec.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println(err)
		return 1
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		for range sigs {
			_ = reaper.Reap()
		}
	}()
	return m.Run()
}

func makeRootfs(dir, busybox string) error {
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755)
}

func needContainers(t *testing.T) {
	t.Helper()
	if runtimeBinary == "" {
		t.Skip("needs root and a static busybox")
	}
}

// recorder is a shim.Publisher that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []any
}

func (r *recorder) Publish(_ context.Context, _ string, evt events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, evt)
	return nil
}

func (r *recorder) Close() error { return nil }

// names lists the events for container id, as "TaskExit(exec)" and so on.
func (r *recorder) names(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, e := range r.events {
		var cid, sub string
		switch e := e.(type) {
		case *eventstypes.TaskCreate:
			cid = e.ContainerID
		case *eventstypes.TaskStart:
			cid = e.ContainerID
		case *eventstypes.TaskExecAdded:
			cid, sub = e.ContainerID, e.ExecID
		case *eventstypes.TaskExecStarted:
			cid, sub = e.ContainerID, e.ExecID
		case *eventstypes.TaskPaused:
			cid = e.ContainerID
		case *eventstypes.TaskResumed:
			cid = e.ContainerID
		case *eventstypes.TaskOOM:
			cid = e.ContainerID
		case *eventstypes.TaskExit:
			cid = e.ContainerID
			if e.ID != e.ContainerID {
				sub = e.ID
			}
		case *eventstypes.TaskDelete:
			cid = e.ContainerID
		}
		if cid != id {
			continue
		}
		name := strings.TrimPrefix(fmt.Sprintf("%T", e), "*events.")
		if sub != "" {
			name += "(" + sub + ")"
		}
		names = append(names, name)
	}
	return names
}

type harness struct {
	t   *testing.T
	ctx context.Context
	svc taskAPI.TTRPCTaskService
	pub *recorder
	dir string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	needContainers(t)
	ctx := namespaces.WithNamespace(context.Background(), "hostnet-test")
	ctx, sd := shutdown.WithShutdown(ctx)
	pub := &recorder{}
	svc, err := NewService(ctx, pub, sd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Shutdown)
	return &harness{t: t, ctx: ctx, svc: svc, pub: pub, dir: t.TempDir()}
}

// bundle writes a bundle for container id running args.
func (h *harness) bundle(id string, args []string, edit func(*specs.Spec)) string {
	h.t.Helper()
	dir := filepath.Join(h.dir, id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		h.t.Fatal(err)
	}
	s := testSpec(args)
	s.Linux.CgroupsPath = "/hostnet-task-test/" + id
	if edit != nil {
		edit(s)
	}
	if err := bundle.New(dir).WriteSpec(s); err != nil {
		h.t.Fatal(err)
	}
	return dir
}

// testSpec runs args in the busybox root with namespaces of its own.
func testSpec(args []string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/bin"},
			Cwd:  "/",
		},
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Hostname: "task-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
		},
	}
}

func (h *harness) options() *taskAPI.CreateTaskRequest {
	h.t.Helper()
	opts, err := typeurl.MarshalAnyToProto(&options.Options{
		BinaryName: runtimeBinary,
		Root:       filepath.Join(h.dir, "state"),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return &taskAPI.CreateTaskRequest{Options: opts}
}

// create creates container id; its stdout and stderr go to stdout and
// stderr, fifos or URIs.
func (h *harness) create(id string, args []string, stdout, stderr string, edit func(*specs.Spec)) {
	h.t.Helper()
	r := h.options()
	r.ID, r.Bundle = id, h.bundle(id, args, edit)
	r.Stdout, r.Stderr = stdout, stderr
	if _, err := h.svc.Create(h.ctx, r); err != nil {
		h.t.Fatalf("Create %s: %v", id, err)
	}
	h.cleanup(id)
}

// cleanup removes container id when the test ends.
func (h *harness) cleanup(id string) {
	h.t.Cleanup(func() {
		// Whatever the test left, leave no container, cgroup or state.
		ctx := context.Background()
		_, _ = h.svc.Kill(h.ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(unix.SIGKILL), All: true})
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, _ = h.svc.Wait(wctx, &taskAPI.WaitRequest{ID: id})
		_, _ = h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: id})
		for _, hier := range []string{"memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "systemd", ""} {
			_ = os.Remove(filepath.Join("/sys/fs/cgroup", hier, "hostnet-task-test", id))
			_ = os.Remove(filepath.Join("/sys/fs/cgroup", hier, "hostnet-task-test"))
		}
	})
}

// fifo makes a fifo and returns its path and everything written to it.
func (h *harness) fifo(name string) (string, <-chan string) {
	h.t.Helper()
	path := filepath.Join(h.dir, name)
	f, err := fifo.OpenFifo(h.ctx, path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(chan string, 1)
	go func() {
		defer f.Close()
		data, _ := io.ReadAll(f)
		out <- string(data)
	}()
	return path, out
}

func (h *harness) wait(id, execID string) uint32 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 20*time.Second)
	defer cancel()
	r, err := h.svc.Wait(ctx, &taskAPI.WaitRequest{ID: id, ExecID: execID})
	if err != nil {
		h.t.Fatalf("Wait %s %s: %v", id, execID, err)
	}
	return r.ExitStatus
}

func (h *harness) must(what string, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

func (h *harness) exec(id, execID string, args ...string) {
	h.t.Helper()
	spec, err := typeurl.MarshalAnyToProto(&specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}})
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = h.svc.Exec(h.ctx, &taskAPI.ExecProcessRequest{ID: id, ExecID: execID, Spec: spec})
	h.must("Exec "+execID, err)
	_, err = h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id, ExecID: execID})
	h.must("Start "+execID, err)
}

// expectEvents waits for container id's events to be want: they are
// published asynchronously.
func (h *harness) expectEvents(id string, want ...string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.pub.names(id)
		if strings.Join(got, " ") == strings.Join(want, " ") {
			return
		}
		if time.Now().After(deadline) {
			h.t.Errorf("events:\n got %v\nwant %v", got, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLifecycleEvents runs a container through every state with an exec and
// checks each event is published once, in order, execs' exits before the
// init's.
func TestLifecycleEvents(t *testing.T) {
	h := newHarness(t)
	const id = "lifecycle"
	stdout, out := h.fifo("stdout")
	stderr, errOut := h.fifo("stderr")
	h.create(id, []string{"/bin/busybox", "sh", "-c", "echo out; echo err >&2; exec /bin/busybox sleep 60"}, stdout, stderr, nil)
	_, err := h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id})
	h.must("Start", err)
	h.exec(id, "sleeper", "/bin/busybox", "sleep", "60")
	_, err = h.svc.Pause(h.ctx, &taskAPI.PauseRequest{ID: id})
	h.must("Pause", err)
	st, err := h.svc.State(h.ctx, &taskAPI.StateRequest{ID: id})
	h.must("State", err)
	if st.Status.String() != "PAUSED" {
		t.Errorf("state after Pause = %s", st.Status)
	}
	_, err = h.svc.Resume(h.ctx, &taskAPI.ResumeRequest{ID: id})
	h.must("Resume", err)
	if _, err := h.svc.Checkpoint(h.ctx, &taskAPI.CheckpointTaskRequest{ID: id}); !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("Checkpoint = %v, want a failed precondition", err)
	}
	_, err = h.svc.Kill(h.ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(unix.SIGKILL)})
	h.must("Kill", err)
	if status := h.wait(id, ""); status != 137 {
		t.Errorf("init exit status = %d, want 137", status)
	}
	if status := h.wait(id, "sleeper"); status != 137 {
		t.Errorf("exec exit status = %d, want 137", status)
	}
	_, err = h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: id, ExecID: "sleeper"})
	h.must("Delete exec", err)
	r, err := h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: id})
	h.must("Delete", err)
	if r.ExitStatus != 137 {
		t.Errorf("Delete exit status = %d", r.ExitStatus)
	}
	if got := <-out; got != "out\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := <-errOut; got != "err\n" {
		t.Errorf("stderr = %q", got)
	}
	h.expectEvents(id, "TaskCreate", "TaskStart", "TaskExecAdded(sleeper)", "TaskExecStarted(sleeper)",
		"TaskPaused", "TaskResumed", "TaskExit(sleeper)", "TaskExit", "TaskDelete")
	if e, err := bundle.New(filepath.Join(h.dir, id)).ReadExit(); err != nil || e.Status != 137 {
		t.Errorf("recorded exit = %+v, %v", e, err)
	}
	if _, err := h.svc.State(h.ctx, &taskAPI.StateRequest{ID: id}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("State after Delete = %v, want not found", err)
	}
}

// TestCreateSameIDConcurrently: of two creates of one id at once, one
// creates the container and the other is refused as existing, leaving the
// container alone: it starts and exits as its program says.
func TestCreateSameIDConcurrently(t *testing.T) {
	h := newHarness(t)
	const id = "twice"
	bundle := h.bundle(id, []string{"/bin/busybox", "sh", "-c", "exit 7"}, nil)
	h.cleanup(id)
	start := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		r := h.options()
		r.ID, r.Bundle = id, bundle
		go func() {
			<-start
			_, err := h.svc.Create(h.ctx, r)
			errs <- err
		}()
	}
	close(start)
	var created, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			created++
		case errdefs.IsAlreadyExists(errgrpc.ToNative(err)):
			refused++
		default:
			t.Errorf("Create: %v, want success or already exists", err)
		}
	}
	if created != 1 || refused != 1 {
		t.Fatalf("%d creates succeeded and %d were refused as existing, want one each", created, refused)
	}
	_, err := h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id})
	h.must("Start", err)
	if status := h.wait(id, ""); status != 7 {
		t.Errorf("exit status = %d, want 7", status)
	}
}

// TestDeleteConcurrently: of two deletes of one exited task at once (CRI's
// event monitor and a pod's removal do that), one deletes and the other is
// told not found, as runc's shim answers, which containerd accepts; the
// teardown runs once and TaskDelete is published once. Before, the loser
// ran the teardown again and failed with "process … is deleted, cannot
// become deleted", a failed precondition that left containerd a task no
// delete could remove.
func TestDeleteConcurrently(t *testing.T) {
	h := newHarness(t)
	const id = "deletetwice"
	h.create(id, []string{"/bin/busybox", "sh", "-c", "exit 3"}, "", "", nil)
	_, err := h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id})
	h.must("Start", err)
	if status := h.wait(id, ""); status != 3 {
		t.Fatalf("exit status = %d, want 3", status)
	}
	start := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			<-start
			_, err := h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: id})
			errs <- err
		}()
	}
	close(start)
	var deleted, notFound int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			deleted++
		case errdefs.IsNotFound(errgrpc.ToNative(err)):
			notFound++
		default:
			t.Errorf("Delete: %v, want success or not found", err)
		}
	}
	if deleted != 1 || notFound != 1 {
		t.Fatalf("%d deletes succeeded and %d were told not found, want one each", deleted, notFound)
	}
	h.expectEvents(id, "TaskCreate", "TaskStart", "TaskExit", "TaskDelete")
}

// TestManyContainers checks one service holds several containers and stops
// only once the last is deleted.
func TestManyContainers(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"pod-a", "pod-b"} {
		h.create(id, []string{"/bin/busybox", "sh", "-c", "exit 3"}, "", "", nil)
		_, err := h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id})
		h.must("Start "+id, err)
	}
	for _, id := range []string{"pod-a", "pod-b"} {
		if status := h.wait(id, ""); status != 3 {
			t.Errorf("%s exit status = %d, want 3", id, status)
		}
	}
	_, err := h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: "pod-a"})
	h.must("Delete pod-a", err)
	_, err = h.svc.Shutdown(h.ctx, &taskAPI.ShutdownRequest{})
	h.must("Shutdown", err)
	select {
	case <-h.svc.(*service).shutdown.Done():
		t.Fatal("shim shut down while it still had a container")
	default:
	}
	if _, err := h.svc.State(h.ctx, &taskAPI.StateRequest{ID: "pod-b"}); err != nil {
		t.Errorf("State pod-b: %v", err)
	}
	_, err = h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: "pod-b"})
	h.must("Delete pod-b", err)
	_, err = h.svc.Shutdown(h.ctx, &taskAPI.ShutdownRequest{})
	h.must("Shutdown", err)
	select {
	case <-h.svc.(*service).shutdown.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("shim did not shut down once its last container was deleted")
	}
}

// TestOOM runs a container out of memory: TaskOOM precedes its TaskExit.
func TestOOM(t *testing.T) {
	h := newHarness(t)
	const id = "oom"
	limit := int64(16 << 20)
	h.create(id, []string{"/bin/busybox", "sh", "-c", "x=$(/bin/busybox head -c 200000000 /dev/zero | /bin/busybox tr '\\0' a); echo survived"}, "", "", func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	})
	_, err := h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id})
	h.must("Start", err)
	if status := h.wait(id, ""); status != 137 {
		t.Errorf("exit status = %d, want 137 (OOM killed)", status)
	}
	_, err = h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: id})
	h.must("Delete", err)
	// One TaskOOM per process the OOM killer took, as the runc shim counts:
	// the shell, and at times one of its pipeline's too (seen on cgroup v2).
	want := "TaskCreate TaskStart TaskOOM TaskExit TaskDelete"
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := strings.Join(h.pub.names(id), " ")
		for strings.Contains(got, "TaskOOM TaskOOM") {
			got = strings.Replace(got, "TaskOOM TaskOOM", "TaskOOM", 1)
		}
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events:\n got %v\nwant %s (TaskOOM once or more)", h.pub.names(id), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoLeaks runs containers logging to a file and to a logging binary and
// checks that once they are deleted the shim holds no more fds or
// goroutines than before.
func TestNoLeaks(t *testing.T) {
	h := newHarness(t)
	logged := filepath.Join(h.dir, "logged")
	logger := filepath.Join(h.dir, "logger.sh")
	script := "#!/bin/sh\nexec 5>&-\n/bin/cat <&3 >\"$2.out\" &\n/bin/cat <&4 >\"$2.err\" &\nwait\n"
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	loggerV2 := filepath.Join(h.dir, "logger-v2.sh")
	script = "#!/bin/sh\nprintf x >&5\nexec 5>&-\n/bin/cat <&3 >\"$2.out\" &\n/bin/cat <&4 >\"$2.err\" &\nwait\n"
	if err := os.WriteFile(loggerV2, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(id, stdout, stderr string) {
		h.create(id, []string{"/bin/busybox", "sh", "-c", "echo out-" + id + "; echo err-" + id + " >&2"}, stdout, stderr, nil)
		_, err := h.svc.Start(h.ctx, &taskAPI.StartRequest{ID: id})
		h.must("Start "+id, err)
		h.wait(id, "")
		_, err = h.svc.Delete(h.ctx, &taskAPI.DeleteRequest{ID: id})
		h.must("Delete "+id, err)
	}
	// Once first: the Go runtime keeps some fds (its poller) for good.
	run("warmup", "file://"+logged+".warmup", "file://"+logged+".warmup")
	fds, goroutines := countFds(t), runtime.NumGoroutine()

	run("file", "file://"+logged+".file", "file://"+logged+".file")
	uri := "binary://" + logger + "?path=" + logged + ".binary"
	run("binary", uri, uri)
	uri = "binary-v2://" + loggerV2 + "?path=" + logged + ".binary-v2"
	run("binary-v2", uri, uri)

	for file, want := range map[string]string{
		".file":          "out-file\nerr-file\n",
		".binary.out":    "out-binary\n",
		".binary.err":    "err-binary\n",
		".binary-v2.out": "out-binary-v2\n",
		".binary-v2.err": "err-binary-v2\n",
	} {
		data, err := os.ReadFile(logged + file)
		if got := string(data); err != nil || (got != want && (file != ".file" || got != "err-file\nout-file\n")) {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		nfds, ng := countFds(t), runtime.NumGoroutine()
		if nfds <= fds && ng <= goroutines {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("fds %d -> %d, goroutines %d -> %d\nfds: %v\n%s", fds, nfds, goroutines, ng, openFds(t), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countFds(t *testing.T) int {
	t.Helper()
	return len(openFds(t))
}

func openFds(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds = append(fds, e.Name()+" -> "+target)
	}
	return fds
}
