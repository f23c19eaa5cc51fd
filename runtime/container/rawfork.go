//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64)

package container

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// exec starts its process from a raw clone(2), for two reasons:
//   - Joining a user namespace needs a single-threaded caller (setns(2):
//     EINVAL otherwise), which a Go program never is; runc has a C
//     constructor (nsexec) for it. The child of a raw clone is
//     single-threaded.
//   - The child runs in the container's mount namespace, where a container
//     with CAP_SYS_ADMIN (in the host's user namespace or its own) may have
//     mounted over /proc: the init must be exec'd through its descriptor
//     (execveat), which os/exec cannot do, never through /proc/self/fd/N.
// The child runs only the nosplit code below (raw system calls, no
// allocation, no scheduler) until the exec. The other namespaces are joined
// by the parent thread before the fork, so the child only joins the user
// namespace, if any, becomes its root, and execs the sealed init.

// rawForkSupported: the raw clone's arguments are checked for these
// architectures.
const rawForkSupported = true

// rawForkArgs is everything the child needs, prepared by the parent:
// after the fork the child may not allocate.
type rawForkArgs struct {
	userns  int // fd of the user namespace to join, or -1
	exe     int // fd of the sealed init binary, exec'd with execveat
	empty   *byte
	argv    []*byte
	envp    []*byte
	setsid  bool
	keep    []int  // fds to pass on: their close-on-exec flag is cleared
	errPipe int    // write end: the child reports a failure here
	oldMask uint64 // the signal mask to exec with
}

// forkExec starts the init exe from the calling thread (which is in the
// container's other namespaces already), in the user namespace userns if
// not nil (opened before the thread joined the container's mount
// namespace, where /proc is the container's), and returns it once it has
// exec'd.
func forkExec(userns, exe *os.File, argv, env []string, setsid bool, keep []*os.File) (*os.Process, error) {
	a := &rawForkArgs{userns: -1, exe: int(exe.Fd())}
	where := "the container"
	if userns != nil {
		a.userns, where = int(userns.Fd()), "user namespace "+userns.Name()
	}
	var err error
	if a.empty, err = syscall.BytePtrFromString(""); err != nil {
		return nil, err
	}
	if a.argv, err = syscall.SlicePtrFromStrings(argv); err != nil {
		return nil, err
	}
	if a.envp, err = syscall.SlicePtrFromStrings(env); err != nil {
		return nil, err
	}
	a.setsid = setsid
	for _, f := range keep {
		a.keep = append(a.keep, int(f.Fd()))
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	defer unix.Close(p[0])
	a.errPipe = p[1]

	// The mask and the namespaces are this thread's; no fd may be made
	// inheritable by another goroutine's fork meanwhile.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	// No Go signal handler may run in the child: block every signal on
	// this thread across the fork; the child restores the mask at exec.
	all := ^uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&a.oldMask)), 8, 0, 0); e != 0 {
		unix.Close(p[1])
		return nil, fmt.Errorf("block signals: %w", e)
	}
	pid, e := rawForkExec(a)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&a.oldMask)), 0, 8, 0, 0)
	// The fds passed by number must stay open until the fork is done.
	runtime.KeepAlive(keep)
	runtime.KeepAlive(exe)
	runtime.KeepAlive(userns) // nil is fine
	unix.Close(p[1])
	if e != 0 {
		return nil, fmt.Errorf("fork: %w", e)
	}

	// EOF: the pipe closed on exec. Else the step and errno that failed.
	var report [8]byte
	n, rerr := readFull(p[0], report[:])
	if n == 0 && rerr == nil {
		return os.FindProcess(pid)
	}
	var ws unix.WaitStatus
	if n != len(report) {
		unix.Kill(pid, unix.SIGKILL)
		unix.Wait4(pid, &ws, 0, nil)
		return nil, fmt.Errorf("start process in %s: read child's report: %d bytes, %v", where, n, rerr)
	}
	unix.Wait4(pid, &ws, 0, nil)
	step := forkSteps[binary.LittleEndian.Uint32(report[:4])]
	errno := syscall.Errno(binary.LittleEndian.Uint32(report[4:]))
	return nil, fmt.Errorf("start process in %s: %s: %w", where, step, errno)
}

func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if m <= 0 || err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// forkSteps name what the child was doing when it failed.
var forkSteps = map[uint32]string{
	1: "join the user namespace", 2: "become its root group", 3: "become its root user",
	4: "setsid", 5: "pass descriptors", 7: "execveat",
}

// rawForkExec forks; the child joins the user namespace, if any, and
// execs.
// It returns the child's pid in the parent. Everything after the clone runs
// in the child on a copy of this goroutine's stack, with no other thread:
// only raw system calls on memory prepared beforehand.
//
//go:norace
//go:nosplit
func rawForkExec(a *rawForkArgs) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	// Child.
	var step uint32
	if a.userns >= 0 {
		if _, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(a.userns), unix.CLONE_NEWUSER, 0); e != 0 {
			step = 1
			goto fail
		}
		// The namespace's root, with every capability in it: an exec as
		// any other uid would drop them. Host groups are dropped where the
		// namespace allows setgroups; the init sets the process's own.
		syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0)
		if _, _, e = syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0); e != 0 {
			step = 2
			goto fail
		}
		if _, _, e = syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); e != 0 {
			step = 3
			goto fail
		}
	}
	if a.setsid {
		if _, _, e = syscall.RawSyscall(syscall.SYS_SETSID, 0, 0, 0); e != 0 {
			step = 4
			goto fail
		}
	}
	for i := 0; i < len(a.keep); i++ {
		if _, _, e = syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(a.keep[i]), syscall.F_SETFD, 0); e != 0 {
			step = 5
			goto fail
		}
	}
	resetSignalHandlers()
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&a.oldMask)), 0, 8, 0, 0)
	_, _, e = syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(a.exe), uintptr(unsafe.Pointer(a.empty)),
		uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])), unix.AT_EMPTY_PATH, 0)
	step = 7
fail:
	var msg [8]byte
	msg[0], msg[1], msg[2], msg[3] = byte(step), byte(step>>8), byte(step>>16), byte(step>>24)
	msg[4], msg[5], msg[6], msg[7] = byte(e), byte(e>>8), byte(e>>16), byte(e>>24)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(a.errPipe), uintptr(unsafe.Pointer(&msg[0])), 8)
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 127, 0, 0)
	}
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// Linux.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// resetSignalHandlers gives signals the Go runtime catches their default
// action, so that none runs a Go handler in the child before the exec;
// ignored signals stay ignored, as across any exec.
//
//go:norace
//go:nosplit
func resetSignalHandlers() {
	var old, dfl kernelSigaction
	for sig := uintptr(1); sig <= 64; sig++ {
		if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler > 1 { // neither SIG_DFL (0) nor SIG_IGN (1)
			syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
}
