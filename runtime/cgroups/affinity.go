package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxCPUs bounds the CPU mask ResetCPUAffinity asks for, as runc's does: far
// more CPUs than any kernel supports, which the kernel clamps.
const maxCPUs = 64 * 1024

// ResetCPUAffinity lets every thread of pid run on every CPU its cgroup
// allows, as runc does once a process has joined its cgroup, the
// container's or a sub-cgroup of it (exec --cgroup): tryResetCPUAffinity in
// runc 1.5.2, after either join. A process inherits the CPU affinity of
// the one that forked it: without the reset a caller pinned with taskset pins the
// container to its own CPUs, whatever the container's cpuset says. The mask
// asks for every CPU; the kernel narrows it to the cpuset and, as the mask
// is remembered, widens it again when the cpuset grows.
//
// Each thread has its own affinity, and a Go init has several: they are
// reset until a pass finds no thread it has not seen (a thread started
// meanwhile by one not yet reset could otherwise keep the old mask).
func ResetCPUAffinity(pid int) error {
	mask := bytes.Repeat([]byte{0xff}, maxCPUs/8)
	seen := map[int]bool{}
	for {
		tids, err := threads(pid)
		if errors.Is(err, os.ErrNotExist) {
			return nil // exited: whoever waits for it reports why
		}
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid], fresh = true, true
			_, _, errno := unix.RawSyscall(unix.SYS_SCHED_SETAFFINITY, uintptr(tid), uintptr(len(mask)), uintptr(unsafe.Pointer(&mask[0])))
			if errno != 0 && errno != unix.ESRCH {
				return fmt.Errorf("reset the CPU affinity of %d (thread %d): %w", pid, tid, errno)
			}
		}
		if !fresh {
			return nil
		}
	}
}

// threads lists the thread ids of pid.
func threads(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
