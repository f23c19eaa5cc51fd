package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the filter on the calling thread with
// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog). For a filter that
// Notifies it returns the listener, a close-on-exec descriptor the caller
// must hand to the agent and close; else -1.
//
// The filter applies to the calling OS thread (and, with
// SECCOMP_FILTER_FLAG_TSYNC, to every thread of the process) and survives
// execve, so the caller must have locked its goroutine to the thread it is
// about to exec on. The kernel also requires either no_new_privs
// (prctl(PR_SET_NO_NEW_PRIVS)) or CAP_SYS_ADMIN; setting no_new_privs is
// the caller's decision, driven by the spec's process.noNewPrivileges.
func (f *Filter) Load() (listener int, err error) {
	if len(f.prog) == 0 {
		return -1, errors.New("seccomp: empty filter")
	}
	prog := unix.SockFprog{Len: uint16(len(f.prog)), Filter: &f.prog[0]}
	r1, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		uintptr(f.flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	switch {
	case errno == unix.EACCES:
		return -1, fmt.Errorf("seccomp: loading filter: %w (needs no_new_privs or CAP_SYS_ADMIN)", errno)
	case errno == unix.ESRCH && f.flags&unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH != 0:
		return -1, fmt.Errorf("seccomp: TSYNC failed: a thread has an incompatible seccomp filter: %w", errno)
	case errno == unix.EINVAL && f.flags != 0:
		return -1, fmt.Errorf("seccomp: loading filter with flags %#x: %w (kernel may not support a requested flag)", f.flags, errno)
	case errno != 0:
		return -1, fmt.Errorf("seccomp: loading filter: %w", errno)
	case f.notify:
		return int(r1), nil
	case r1 != 0:
		// With TSYNC, a positive return is the id of a thread that could
		// not be synchronized (it has a diverging filter); nothing was
		// installed.
		return -1, fmt.Errorf("seccomp: TSYNC failed: thread %d has an incompatible seccomp filter", r1)
	}
	return -1, nil
}
