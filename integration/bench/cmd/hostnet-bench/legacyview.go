package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// crun 1.8 refuses a cgroup v1 hybrid host ("cgroups in hybrid mode not
// supported, drop all controllers from cgroupv2"), though the v2 hierarchy
// here has no controllers. It runs, with real cgroupfs v1 cgroups, when it
// does not see /sys/fs/cgroup/unified: the bench runs crun in a private
// mount namespace without that mount. Only the view of the runtime process
// changes; its containers' cgroups, state and rootfs are the host's.

// unifiedMount is where a hybrid host mounts its cgroup v2 hierarchy.
const unifiedMount = "/sys/fs/cgroup/unified"

// legacyView runs functions on one OS thread that has a mount namespace of
// its own without unifiedMount; processes they start (exec forks from the
// calling thread) inherit that namespace. The thread is never given back to
// the Go scheduler.
type legacyView struct {
	work chan func()
}

func newLegacyView() (*legacyView, error) {
	v := &legacyView{work: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with the goroutine.
		if err := enterLegacyView(); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for f := range v.work {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("mount namespace without %s: %w", unifiedMount, err)
	}
	return v, nil
}

func enterLegacyView() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Unmount(unifiedMount, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Do runs f on the view's thread and returns its error.
func (v *legacyView) Do(f func() error) error {
	done := make(chan error, 1)
	v.work <- func() { done <- f() }
	return <-done
}

// Close ends the view's thread.
func (v *legacyView) Close() { close(v.work) }

// hybridCgroups reports whether this host has the v1+v2 hybrid layout.
func hybridCgroups() bool {
	var st unix.Statfs_t
	return unix.Statfs(unifiedMount, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
