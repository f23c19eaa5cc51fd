package container

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Joining a user namespace needs a single-threaded caller (setns(2):
// EINVAL otherwise), which a Go program never is; runc has a C constructor
// (nsexec) for it. hostnet-runc stays pure Go: it forks with a raw clone(2),
// whose child is single-threaded, and that child runs only the nosplit code
// below (raw system calls, no allocation, no scheduler) until execve. The
// other namespaces are joined by the parent thread before the fork, as for
// every exec, so the child only joins the user namespace, becomes its root
// and execs the init from the sealed memfd.

// userForkArgs is everything the child needs, prepared by the parent:
// after the fork the child may not allocate.
type userForkArgs struct {
	userns  int // fd of the user namespace to join
	path    *byte
	argv    []*byte
	envp    []*byte
	setsid  bool
	keep    []int  // fds to pass on: their close-on-exec flag is cleared
	errPipe int    // write end: the child reports a failure here
	oldMask uint64 // the signal mask to exec with
}

// forkIntoUserNS starts the init in the user namespace userns (opened
// before the calling thread joined the container's mount namespace, where
// /proc is the container's), from the calling thread (which must be locked
// and in the other namespaces already), and returns it once it has exec'd.
func forkIntoUserNS(userns *os.File, path string, argv, env []string, setsid bool, keep []*os.File) (*os.Process, error) {
	a := &userForkArgs{userns: int(userns.Fd())}
	var err error
	if a.path, err = syscall.BytePtrFromString(path); err != nil {
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

	// No Go signal handler may run in the child: block every signal on
	// this thread across the fork; the child restores the mask at exec.
	all := ^uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&a.oldMask)), 8, 0, 0); e != 0 {
		unix.Close(p[1])
		return nil, fmt.Errorf("block signals: %w", e)
	}
	pid, e := forkExecInUserNS(a)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&a.oldMask)), 0, 8, 0, 0)
	unix.Close(p[1])
	if e != 0 {
		return nil, fmt.Errorf("fork: %w", e)
	}

	// EOF: the pipe closed on exec. Else the step and errno that failed.
	var report [8]byte
	n, _ := readFull(p[0], report[:])
	if n == 0 {
		return os.FindProcess(pid)
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
	step := forkSteps[binary.LittleEndian.Uint32(report[:4])]
	errno := syscall.Errno(binary.LittleEndian.Uint32(report[4:]))
	return nil, fmt.Errorf("start process in user namespace %s: %s: %w", userns.Name(), step, errno)
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
	4: "setsid", 5: "pass descriptors", 7: "execve",
}

// forkExecInUserNS forks; the child joins the user namespace and execs.
// It returns the child's pid in the parent. Everything after the clone runs
// in the child on a copy of this goroutine's stack, with no other thread:
// only raw system calls on memory prepared beforehand.
//
//go:norace
//go:nosplit
func forkExecInUserNS(a *userForkArgs) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	// Child.
	var step uint32
	if _, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(a.userns), unix.CLONE_NEWUSER, 0); e != 0 {
		step = 1
		goto fail
	}
	// The namespace's root, with every capability in it: an exec as any
	// other uid would drop them. Host groups are dropped where the
	// namespace allows setgroups; the init sets the process's own groups.
	syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0)
	if _, _, e = syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0); e != 0 {
		step = 2
		goto fail
	}
	if _, _, e = syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); e != 0 {
		step = 3
		goto fail
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
	_, _, e = syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(a.path)),
		uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])))
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
