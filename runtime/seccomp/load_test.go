package seccomp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The kernel tests re-execute the test binary: a seccomp filter cannot be
// removed, so it must be installed in a process that exists only for that.
// TestMain turns the child into a small scenario runner selected by
// childEnv; the scenario prints one line per check and exits non-zero on
// the first failure.
const childEnv = "HOSTNET_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if scenario := os.Getenv(childEnv); scenario != "" {
		os.Exit(runChild(scenario))
	}
	os.Exit(m.Run())
}

var childScenarios = map[string]func(dir string) error{
	"enforce": childEnforce,
	"kill":    childKill,
	"flag":    childFlag,
	"notify":  childNotify,
}

// childFlag loads an allow-all filter with the one flag in
// HOSTNET_SECCOMP_TEST_FLAG (and a notify rule on a syscall nobody makes
// for WAIT_KILLABLE_RECV, which needs a listener).
func childFlag(string) error {
	flag := specs.LinuxSeccompFlag(os.Getenv("HOSTNET_SECCOMP_TEST_FLAG"))
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{flag}}
	if flag == specs.LinuxSeccompFlagWaitKillableRecv {
		p.ListenerPath = "unused"
		p.Syscalls = []specs.LinuxSyscall{{Names: []string{"acct"}, Action: specs.ActNotify}}
	}
	f, err := Compile(p)
	if err != nil {
		return err
	}
	listener, err := f.Load()
	if err != nil {
		return err
	}
	if p.ListenerPath != "" && listener < 0 {
		return errors.New("no listener for a notify rule")
	}
	fmt.Println("loaded")
	return nil
}

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	nr    int32
	arch  uint32
	ip    uint64
	args  [6]uint64
}

type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

// childNotify loads a filter that notifies on getppid (and, with TSYNC,
// on every thread) and answers from another, unfiltered thread with a
// value getppid never returns: the listener Load hands out is the
// kernel's, and a notified call waits for its answer.
func childNotify(string) error {
	f, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  "unused",
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActNotify}},
	})
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	listener, err := f.Load()
	if err != nil {
		return err
	}
	fmt.Println("loaded, listener", listener)
	answered := make(chan error, 1)
	go func() {
		// Not locked: runs on a thread without the filter.
		var n seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
			answered <- fmt.Errorf("SECCOMP_IOCTL_NOTIF_RECV: %w", e)
			return
		}
		if n.nr != int32(syscallNumbers["getppid"]) || n.pid != uint32(os.Getpid()) {
			answered <- fmt.Errorf("notified of syscall %d by %d, want getppid by %d", n.nr, n.pid, os.Getpid())
			return
		}
		r := seccompNotifResp{id: n.id, val: 4242}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r)))
		if e != 0 {
			answered <- fmt.Errorf("SECCOMP_IOCTL_NOTIF_SEND: %w", e)
			return
		}
		answered <- nil
	}()
	// Not unix.Getppid, a raw system call: blocked in it, this thread
	// would keep its P, and with GOMAXPROCS=1 (a one-CPU guest) the
	// answering goroutine would never run.
	r1, _, _ := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
	got := int(r1)
	if err := <-answered; err != nil {
		return err
	}
	if got != 4242 {
		return fmt.Errorf("getppid returned %d, want the agent's 4242", got)
	}
	fmt.Println("getppid answered by the listener:", got)
	return nil
}

func runChild(scenario string) int {
	fn, ok := childScenarios[scenario]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q\n", scenario)
		return 3
	}
	// The filter is attached to this OS thread; keep the checks on it.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "PR_SET_NO_NEW_PRIVS: %v\n", err)
		return 3
	}
	if err := fn(os.Getenv("HOSTNET_SECCOMP_TEST_DIR")); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	return 0
}

// childProfile is an allow-list profile in the containerd style: every
// syscall of the native table is allowed except the few under test.
func childProfile() *specs.LinuxSeccomp {
	excluded := map[string]bool{"mkdirat": true, "mkdir": true, "uname": true, "lseek": true, "getrandom": true}
	var allowed []string
	for name := range syscallNumbers {
		if !excluded[name] {
			allowed = append(allowed, name)
		}
	}
	foreign, _ := foreignArch()
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, // EPERM
		Architectures: []specs.Arch{foreign, specs.ArchX32},
		// TSYNC puts every Go runtime thread under the filter too; LOG and
		// SPEC_ALLOW check that the flags reach the kernel.
		Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{
			{Names: allowed, Action: specs.ActAllow},
			{Names: []string{"uname"}, Action: specs.ActErrno, ErrnoRet: ptr(200)},
			// lseek: SEEK_END refused with 201, offsets >= 4 GiB with 202,
			// everything else allowed; the rules are tried in order.
			{Names: []string{"lseek"}, Action: specs.ActErrno, ErrnoRet: ptr(201),
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: unix.SEEK_END, Op: specs.OpEqualTo}}},
			{Names: []string{"lseek"}, Action: specs.ActErrno, ErrnoRet: ptr(202),
				Args: []specs.LinuxSeccompArg{{Index: 1, Value: 1 << 32, Op: specs.OpGreaterEqual}}},
			{Names: []string{"lseek"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 1, Value: 1 << 32, Op: specs.OpLessThan}}},
			// getrandom: allowed only without GRND_RANDOM.
			{Names: []string{"getrandom"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: unix.GRND_RANDOM, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
		},
	}
}

func childEnforce(dir string) error {
	f, err := Compile(childProfile())
	if err != nil {
		return err
	}
	file, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer file.Close()
	fd := int(file.Fd())

	if _, err := f.Load(); err != nil {
		return err
	}
	fmt.Println("loaded", f.Len(), "instructions")

	var errs []error
	expect := func(what string, got, want error) {
		status := "ok"
		if !errors.Is(got, want) {
			status = "WRONG"
			errs = append(errs, fmt.Errorf("%s: got %v, want %v", what, got, want)) //nolint:errorlint // a report of two errors, not a wrap
		}
		fmt.Printf("%-45s -> %v (%s)\n", what, got, status)
	}
	var none error

	expect("mkdirat (not allowed: default ERRNO)", unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "x"), 0o755), unix.EPERM)
	_, _, e := unix.Syscall(unix.SYS_GETPID, 0, 0, 0)
	expect("getpid (allowed)", errnoOrNil(e), none)
	if got, want := unix.Getpid(), os.Getpid(); got != want {
		errs = append(errs, fmt.Errorf("getpid returned %d, want %d", got, want))
	}
	var uts unix.Utsname
	expect("uname (errnoRet 200)", unix.Uname(&uts), unix.Errno(200))

	seek := func(off int64, whence int) error {
		_, err := unix.Seek(fd, off, whence)
		return err
	}
	expect("lseek(fd, 0, SEEK_SET)", seek(0, unix.SEEK_SET), none)
	expect("lseek(fd, 0, SEEK_END)", seek(0, unix.SEEK_END), unix.Errno(201))
	expect("lseek(fd, 1<<32-1, SEEK_SET)", seek(1<<32-1, unix.SEEK_SET), none)
	expect("lseek(fd, 1<<32, SEEK_SET)", seek(1<<32, unix.SEEK_SET), unix.Errno(202))
	expect("lseek(fd, 1<<32+5, SEEK_CUR)", seek(1<<32+5, unix.SEEK_CUR), unix.Errno(202))

	buf := make([]byte, 8)
	getrandom := func(flags int) error {
		_, _, e := unix.Syscall(unix.SYS_GETRANDOM, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(flags))
		return errnoOrNil(e)
	}
	expect("getrandom(GRND_NONBLOCK)", getrandom(unix.GRND_NONBLOCK), none)
	expect("getrandom(GRND_RANDOM|GRND_NONBLOCK)", getrandom(unix.GRND_RANDOM|unix.GRND_NONBLOCK), unix.EPERM)

	// With TSYNC every thread is filtered, so a goroutine locked to some
	// other runtime thread is refused too.
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // a fresh thread: this one is never unlocked
		var uts unix.Utsname
		done <- unix.Uname(&uts)
	}()
	expect("uname from another locked goroutine", <-done, unix.Errno(200))

	return errors.Join(errs...)
}

func errnoOrNil(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// childKill installs a deny rule with SCMP_ACT_KILL_PROCESS and then
// triggers it; the parent expects death by SIGSYS.
func childKill(string) error {
	f, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getppid"}, Action: specs.ActKillProcess},
		},
	})
	if err != nil {
		return err
	}
	if _, err := f.Load(); err != nil {
		return err
	}
	fmt.Println("loaded")
	unix.Getppid()
	return errors.New("still alive after getppid")
}

func requireSeccomp(t *testing.T) {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !strings.Contains(string(status), "\nSeccomp:") {
		t.Skip("kernel without seccomp support")
	}
}

func startChild(t *testing.T, scenario string, env ...string) (string, error) {
	t.Helper()
	// Bounded: a child stuck under its filter fails its test, not the run.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+scenario, "HOSTNET_SECCOMP_TEST_DIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKernelEnforcesFilter loads an allow-list filter in a child and checks
// from inside that the kernel applies each action and argument rule.
func TestKernelEnforcesFilter(t *testing.T) {
	requireSeccomp(t)
	out, err := startChild(t, "enforce")
	t.Logf("child output:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if !strings.Contains(out, "loaded") {
		t.Fatal("child never loaded its filter")
	}
}

// TestKernelKillProcess checks that SCMP_ACT_KILL_PROCESS kills the whole
// (multi-threaded Go) process with SIGSYS.
func TestKernelKillProcess(t *testing.T) {
	requireSeccomp(t)
	out, err := startChild(t, "kill")
	t.Logf("child output:\n%s", out)
	if !strings.Contains(out, "loaded") {
		t.Fatalf("child never loaded its filter: %v", err)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("child exited with %v, want death by SIGSYS", err)
	}
	ws := exitErr.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Fatalf("child status %v, want killed by SIGSYS", ws)
	}
}

// TestKernelNotify loads a filter with an SCMP_ACT_NOTIFY rule and answers
// the notification through the listener Load returns.
func TestKernelNotify(t *testing.T) {
	requireSeccomp(t)
	out, err := startChild(t, "notify")
	t.Logf("child output:\n%s", out)
	if err != nil || !strings.Contains(out, "answered by the listener: 4242") {
		t.Fatalf("child failed: %v", err)
	}
}

// TestLoadErrors checks that Load refuses an empty (zero-value) Filter
// instead of passing a zero-length program to the kernel.
func TestLoadErrors(t *testing.T) {
	var empty Filter
	if _, err := empty.Load(); err == nil {
		t.Error("loading an empty filter succeeded")
	}
}
