//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64)

package container

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// forkExec starts its process from a raw clone(2), for create and exec
// alike (on the architectures whose clone arguments are checked here; see
// rawfork_other.go for the rest), for two reasons:
//   - Joining a user namespace needs a single-threaded caller (setns(2):
//     EINVAL otherwise), which a Go program never is; runc has a C
//     constructor (nsexec) for it. The child of a raw clone is
//     single-threaded.
//   - The child may run in a mount namespace joined by path, where a
//     container with CAP_SYS_ADMIN may have mounted over /proc: the init
//     must be exec'd through its descriptor (execveat), which os/exec
//     cannot do, never through /proc/self/fd/N.
// The child runs only the nosplit code below (raw system calls, no
// allocation, no scheduler) until the exec. The namespaces joined by path
// are joined by the parent thread before the fork and the new ones are
// created by the clone; the child waits for its id maps if it has a new
// user namespace, joins the user namespace to join, if any, becomes its
// root, and execs the sealed init.
//
// With a user namespace to join, the new namespaces must belong to it, not
// to the runtime's: the child unshares them once it has joined, and, as a
// new PID namespace takes in only the children of the process that
// unshared it, forks once more (CLONE_PARENT, so the init is the
// runtime's child like any other) and reports the grandchild's pid; the
// grandchild, pid 1 of the new namespace, goes on to the exec. runc's
// nsexec has the same two stages.

// rawForkArgs is everything the child needs, prepared by the parent:
// after the fork the child may not allocate.
type rawForkArgs struct {
	cloneFlags uintptr
	// unshareFlags are the namespaces created once the user namespace is
	// joined; with CLONE_NEWPID the child forks again.
	unshareFlags uintptr
	mapWait      int // read end: the parent writes a byte once the id maps are set, or -1
	mapWaitW     int // its write end, which the child closes, or -1
	// hold makes the child exit after mapWait instead of exec'ing: it only
	// lends its new user namespace (newUserNamespace).
	hold       bool
	userns     int // fd of the user namespace to join, or -1
	becomeRoot bool
	exe        int // fd of the sealed init binary, exec'd with execveat
	empty      *byte
	argv       []*byte
	envp       []*byte
	setsid     bool
	keep       []int  // fds to pass on: their close-on-exec flag is cleared
	errPipe    int    // write end: the child reports a failure here
	oldMask    uint64 // the signal mask to exec with
	// capHeader and capData are where the child reads and lowers its
	// effective capabilities before the exec (dropReadCaps), allocated
	// here because the child may not allocate.
	capHeader *unix.CapUserHeader
	capData   *[2]unix.CapUserData
}

// dropReadCaps are the capabilities that let root read any file. The
// child takes them out of its effective set just before it execs the
// sealed, execute-only (0111) binary, so that the kernel cannot read that
// file for it and marks the new image non-dumpable from its first
// instruction (fs/exec.c: would_dump, then begin_new_exec sets dumpability
// to fs.suid_dumpable, 0 by default). With them, root's DAC override makes
// the file readable and the init would stay dumpable, visible to ptrace and
// its /proc files open to the container's root, until its Go main sets
// PR_SET_DUMPABLE, a few milliseconds later (runc closes that gap with
// nsexec's C constructor; CVE-2016-9962's class). The exec itself needs
// neither (the file is executable by all), and the exec recomputes root's
// capabilities from its permitted and bounding sets, so the init has all
// it had.
const dropReadCaps = 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH

// forkExec starts f from the calling thread (which is in the namespaces
// to join already) and returns the process once it has exec'd.
func forkExec(f *forkSpec) (*os.Process, error) {
	a := &rawForkArgs{cloneFlags: f.cloneFlags, mapWait: -1, mapWaitW: -1, userns: -1, exe: int(f.exe.Fd()),
		capHeader: &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, capData: new([2]unix.CapUserData)}
	where := "the container"
	if f.userns != nil {
		a.userns, where = int(f.userns.Fd()), "user namespace "+f.userns.Name()
		// Created by the clone, they would belong to the runtime's user
		// namespace, where the container's root has no say over them.
		a.cloneFlags, a.unshareFlags = 0, f.cloneFlags
	}
	a.becomeRoot = f.userns != nil || f.cloneFlags&unix.CLONE_NEWUSER != 0
	var err error
	if a.empty, err = syscall.BytePtrFromString(""); err != nil {
		return nil, err
	}
	if a.argv, err = syscall.SlicePtrFromStrings(f.argv); err != nil {
		return nil, err
	}
	if a.envp, err = syscall.SlicePtrFromStrings(f.env); err != nil {
		return nil, err
	}
	a.setsid = f.setsid
	for _, k := range f.keep {
		a.keep = append(a.keep, int(k.Fd()))
	}
	var p, maps [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	defer unix.Close(p[0])
	a.errPipe = p[1]
	if f.cloneFlags&unix.CLONE_NEWUSER != 0 {
		if err := unix.Pipe2(maps[:], unix.O_CLOEXEC); err != nil {
			unix.Close(p[1])
			return nil, fmt.Errorf("create pipe: %w", err)
		}
		defer unix.Close(maps[1])
		a.mapWait, a.mapWaitW = maps[0], maps[1]
	}

	pid, e := rawFork(a)
	runtime.KeepAlive(f)
	unix.Close(p[1])
	if a.mapWait >= 0 {
		unix.Close(a.mapWait)
	}
	if e != 0 {
		return nil, fmt.Errorf("fork: %w", e)
	}
	if a.mapWait >= 0 {
		err := writeIDMaps(f, pid)
		if err == nil {
			_, err = unix.Write(maps[1], []byte{0})
		}
		if err != nil {
			reap(pid, true)
			return nil, err
		}
	}

	// Records of what the children do, until EOF: the pipe closes on exec.
	initPid, err := readForkReport(p[0], pid)
	if initPid != pid {
		// The intermediate child, done once it has forked the init.
		reap(pid, err != nil)
	}
	if err != nil {
		reap(initPid, true)
		return nil, fmt.Errorf("start process in %s: %w", where, err)
	}
	return os.FindProcess(initPid)
}

// readForkReport reads the child's report pipe to EOF: each record is a
// failed step and its errno, or step 0 and the pid of the grandchild that
// goes on in a new PID namespace. It returns the pid of the process that
// exec'd (or would have), and what failed.
func readForkReport(fd, pid int) (int, error) {
	initPid := pid
	for {
		var rec [8]byte
		n, err := readFull(fd, rec[:])
		if n == 0 && err == nil {
			return initPid, nil
		}
		if n != len(rec) {
			return initPid, fmt.Errorf("read child's report: %d bytes, %w", n, err)
		}
		step, val := binary.LittleEndian.Uint32(rec[:4]), binary.LittleEndian.Uint32(rec[4:])
		if step == 0 {
			initPid = int(val)
			continue
		}
		return initPid, fmt.Errorf("%s: %w", forkSteps[step], syscall.Errno(val))
	}
}

// reap waits for a child of ours, killing it first if asked.
func reap(pid int, kill bool) {
	if kill {
		unix.Kill(pid, unix.SIGKILL)
	}
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			return
		}
	}
}

// newUserNamespace makes a user namespace with the given mappings, held by
// a raw child that does nothing else and exits once the namespace is open.
func newUserNamespace(proc *procfs.Handle, uid, gid []specs.LinuxIDMapping) (*os.File, error) {
	var maps [2]int
	if err := unix.Pipe2(maps[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	a := &rawForkArgs{cloneFlags: unix.CLONE_NEWUSER, mapWait: maps[0], mapWaitW: maps[1], hold: true, userns: -1, exe: -1, errPipe: -1}
	pid, e := rawFork(a)
	unix.Close(maps[0])
	defer unix.Close(maps[1])
	if e != 0 {
		return nil, fmt.Errorf("fork: %w", e)
	}
	// The namespace is open before its holder goes: the maps are written
	// then, and the descriptor keeps it.
	ns, err := openNamespace(pid, "user")
	if err == nil {
		err = writeIDMaps(&forkSpec{uidMaps: uid, gidMaps: gid, proc: proc}, pid)
	}
	if err == nil {
		_, err = unix.Write(maps[1], []byte{0})
	}
	reap(pid, err != nil)
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		return nil, err
	}
	return ns, nil
}

// rawFork clones with every signal blocked on this thread, so that no Go
// signal handler runs in the child; the child restores the mask at exec.
func rawFork(a *rawForkArgs) (int, syscall.Errno) {
	// The mask and the namespaces are this thread's; no fd may be made
	// inheritable by another goroutine's fork meanwhile.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	all := ^uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&a.oldMask)), 8, 0, 0); e != 0 {
		return 0, e
	}
	pid, e := rawForkExec(a)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&a.oldMask)), 0, 8, 0, 0)
	return pid, e
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
	4: "setsid", 5: "pass descriptors", 6: "wait for its id maps", 7: "execveat",
	8: "create its namespaces", 9: "fork into the new PID namespace",
	10: "drop the capabilities that read any file",
}

// rawForkExec forks; the child waits for its id maps, joins the user
// namespace, if any, and execs.
// It returns the child's pid in the parent. Everything after the clone runs
// in the child on a copy of this goroutine's stack, with no other thread:
// only raw system calls on memory prepared beforehand.
//
//go:norace
//go:nosplit
func rawForkExec(a *rawForkArgs) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, a.cloneFlags|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	// Child.
	var step uint32
	var msg [8]byte
	if a.mapWait >= 0 {
		// The parent's copy is the only writer: EOF if it dies.
		syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(a.mapWaitW), 0, 0)
		var b byte
		for {
			r, _, e = syscall.RawSyscall(syscall.SYS_READ, uintptr(a.mapWait), uintptr(unsafe.Pointer(&b)), 1)
			if e != syscall.EINTR {
				break
			}
		}
		if e != 0 || r != 1 {
			step = 6
			goto fail
		}
		if a.hold {
			for {
				syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
			}
		}
	}
	if a.userns >= 0 {
		if _, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(a.userns), unix.CLONE_NEWUSER, 0); e != 0 {
			step = 1
			goto fail
		}
	}
	if a.becomeRoot {
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
	if a.unshareFlags != 0 {
		if _, _, e = syscall.RawSyscall(syscall.SYS_UNSHARE, a.unshareFlags, 0, 0); e != 0 {
			step = 8
			goto fail
		}
		if a.unshareFlags&syscall.CLONE_NEWPID != 0 {
			r, _, e = syscall.RawSyscall6(syscall.SYS_CLONE, syscall.CLONE_PARENT|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
			if e != 0 {
				step = 9
				goto fail
			}
			if r != 0 {
				// The grandchild's pid (in our PID namespace, the
				// runtime's), for the parent; then this one is done.
				msg[4], msg[5], msg[6], msg[7] = byte(r), byte(r>>8), byte(r>>16), byte(r>>24)
				syscall.RawSyscall(syscall.SYS_WRITE, uintptr(a.errPipe), uintptr(unsafe.Pointer(&msg[0])), 8)
				for {
					syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
				}
			}
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
	if a.capHeader != nil {
		// Non-dumpable from the exec on: see dropReadCaps. Lowering the
		// effective set is always allowed, so a failure is the kernel's.
		if _, _, e = syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(a.capHeader)), uintptr(unsafe.Pointer(a.capData)), 0); e != 0 {
			step = 10
			goto fail
		}
		a.capData[0].Effective &^= dropReadCaps
		if _, _, e = syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(a.capHeader)), uintptr(unsafe.Pointer(a.capData)), 0); e != 0 {
			step = 10
			goto fail
		}
	}
	resetSignalHandlers()
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&a.oldMask)), 0, 8, 0, 0)
	_, _, e = syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(a.exe), uintptr(unsafe.Pointer(a.empty)),
		uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])), unix.AT_EMPTY_PATH, 0)
	step = 7
fail:
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
