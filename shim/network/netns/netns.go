// Package netns creates network namespaces that outlive their processes.
//
// A namespace is kept alive by a bind mount of its nsfs inode on a file
// (e.g. <bundle>/netns): the runtime joins it by that path, and teardown
// can still find it after the container's processes and the shim are gone.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Create makes a new network namespace and pins it at path, which must not
// exist yet. Nothing is left behind on failure.
func Create(path string) (retErr error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("failed to create network namespace mount point: %w", err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			os.Remove(path)
		}
	}()

	return onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("failed to create network namespace: %w", err)
		}
		return nil
	}, func() error {
		if err := unix.Mount(threadNetNS(), path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("failed to pin network namespace at %s: %w", path, err)
		}
		return nil
	})
}

// Do runs fn on a thread switched into the network namespace pinned at
// path; sockets fn opens stay in that namespace.
func Do(path string, fn func() error) error {
	return onThread(func() error {
		target, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("failed to open network namespace: %w", err)
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("failed to enter network namespace %s: %w", path, err)
		}
		return nil
	}, fn)
}

// onThread runs fn on a goroutine locked to its thread, after enter moved
// that thread into another network namespace: setns and unshare switch the
// calling thread only. The thread goes back to the original namespace
// before it is unlocked; if it cannot, it stays locked and the Go runtime
// retires it when the goroutine exits, rather than run other goroutines in
// the other namespace.
func onThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetNS())
		if err != nil {
			errc <- fmt.Errorf("failed to open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			errc <- err
			return
		}
		err = fn()
		// Back before answering: once onThread returns, no thread of the
		// caller's is in the other namespace.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// threadNetNS is the network namespace of the calling thread.
func threadNetNS() string {
	return fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
}

// Remove unmounts and deletes a namespace pinned by Create. The namespace
// itself goes away with its last process. A missing path is not an error.
func Remove(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		// EINVAL: not a mount point, as after a failed or earlier Remove.
		return fmt.Errorf("failed to unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to remove network namespace %s: %w", path, err)
	}
	return nil
}
