package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/cgroups"
	"github.com/hostnet-dev/hostnet/runtime/hooks"
	"github.com/hostnet-dev/hostnet/runtime/rootfs"
)

// Start lets a created container's init exec the user's program.
//
// Start waits for the init twice, for it to open the exec fifo and for its
// exec once it has read the byte (after the startContainer hooks): a
// cancelled ctx ends both waits, as a killed `hostnet-runc start` would.
func (c *Container) Start(ctx context.Context) error {
	switch st := c.Status(); st {
	case Created:
	case Stopped:
		return errors.New("cannot start a container that has stopped")
	default:
		return fmt.Errorf("cannot start an already %s container", st)
	}
	fifo := filepath.Join(c.Dir, fifoName)
	f, err := c.openFifo(ctx, fifo)
	if err != nil {
		return err
	}
	defer f.Close()
	// The init writes one byte, then execs; exec closes its end: EOF. A
	// fifo is pollable, so a deadline ends the read.
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	data, err := io.ReadAll(f)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for the init to exec: %w", ctx.Err())
		}
		return fmt.Errorf("read exec fifo: %w", err)
	}
	if len(data) == 0 {
		if !processAlive(c.InitPid, c.InitStart) {
			return errors.New("cannot start a container whose init has exited")
		}
		return errors.New("cannot start an already running container")
	}
	if err := os.Remove(fifo); err != nil {
		return err
	}
	if c.Hooks != nil {
		if err := hooks.Run("poststart", c.Hooks.Poststart, c.hookState(specs.StateRunning)); err != nil {
			return &HookWarning{err}
		}
	}
	return nil
}

// HookWarning is a poststart or poststop hook failure: the spec has the
// runtime log it and carry on.
type HookWarning struct{ Err error }

func (w *HookWarning) Error() string { return w.Err.Error() }
func (w *HookWarning) Unwrap() error { return w.Err }

func (c *Container) hookState(status specs.ContainerState) *specs.State {
	return &specs.State{Version: c.OCIVersion, ID: c.ID, Status: status, Pid: c.InitPid, Bundle: c.Bundle, Annotations: c.Annotations}
}

// openFifo opens the exec fifo for reading, which blocks until the init
// opens it for writing. An init that died first never will: then a writer
// of our own unblocks the open, and the empty read tells. The liveness check
// cannot decide alone: a short-lived program may already have run and
// exited by the time it looks. A cancelled ctx unblocks the open the same
// way and gives up.
func (c *Container) openFifo(ctx context.Context, path string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
		done <- result{f, err}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return nil, fmt.Errorf("open exec fifo: %w", r.err)
			}
			return r.f, nil
		case <-ctx.Done():
			if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
				r := <-done
				w.Close()
				if r.f != nil {
					r.f.Close()
				}
			}
			return nil, fmt.Errorf("wait for the init to open the exec fifo: %w", ctx.Err())
		case <-tick.C:
			if processAlive(c.InitPid, c.InitStart) {
				continue
			}
			if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
				r := <-done
				w.Close()
				if r.err != nil {
					return nil, fmt.Errorf("open exec fifo: %w", r.err)
				}
				return r.f, nil
			}
		}
	}
}

// ErrNotRunning is a signal for a container without a live init.
var ErrNotRunning = errors.New("container not running")

// Signal sends sig to the init, as runc does, or with all to every process
// in the container's cgroup. Signal 0 only checks that the init is alive.
//
// As runc: SIGKILL goes to every process in the cgroup when the container
// shares the runtime's pid namespace, or once its init is gone (with a pid
// namespace of its own, the kernel has then killed the rest already):
// killing only the init would leave the others running. A paused
// container is thawed after SIGKILL, which a frozen process cannot act on.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	alive := processAlive(c.InitPid, c.InitStart)
	if sig == unix.SIGKILL && !all {
		if !alive {
			all = true
		} else if private, err := c.nsDiffers(specs.PIDNamespace); err == nil && !private {
			all = true
		}
	}
	if all {
		return c.signalAll(sig, alive)
	}
	if !alive {
		return ErrNotRunning
	}
	if err := unix.Kill(c.InitPid, sig); err != nil {
		return fmt.Errorf("unable to signal init: %w", err)
	}
	if sig == unix.SIGKILL {
		// A frozen process cannot die.
		if cg, err := c.LoadCgroup(); err == nil && cg.Frozen() {
			_ = cg.Thaw()
		}
	}
	return nil
}

// signalAll signals every process in the container's cgroup while it is
// frozen, so none can fork away, as runc's signalAllProcesses does.
func (c *Container) signalAll(sig unix.Signal, alive bool) error {
	cg, err := c.LoadCgroup()
	if errors.Is(err, cgroups.ErrNotExist) && !alive {
		return ErrNotRunning
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	paused := cg.Frozen()
	_ = cg.Freeze()
	pids, err := cg.Pids()
	if err == nil && len(pids) == 0 && !alive {
		err = ErrNotRunning
	}
	for _, pid := range pids {
		if kerr := unix.Kill(pid, sig); kerr != nil && !errors.Is(kerr, unix.ESRCH) && err == nil {
			err = fmt.Errorf("signal %d: %w", pid, kerr)
		}
	}
	// A paused container stays paused, unless it was killed.
	if !paused || sig == unix.SIGKILL {
		_ = cg.Thaw()
	}
	return err
}

// Kill signals container id under root as `runc kill` does: with all, a
// container that has nothing left to signal is not an error, since what
// the caller wanted (nothing running) is already so. The command line and
// the shim's in-process launcher both call it.
func Kill(root, id string, sig unix.Signal, all bool) error {
	c, err := Load(root, id)
	if err != nil {
		return err
	}
	err = c.Signal(sig, all)
	if errors.Is(err, ErrNotRunning) && all {
		return nil
	}
	return err
}

// Delete deletes container id under root as `runc delete` does. A create
// that died before writing state leaves a bare directory, which is
// removed; with force, an id with no state at all is then deleted already.
// The command line and the shim's in-process launcher both call it.
func Delete(root, id string, force bool) error {
	c, err := Load(root, id)
	if errors.Is(err, ErrNotExist) {
		if rerr := RemoveStale(root, id); rerr != nil {
			return rerr
		}
		if force {
			return nil
		}
	}
	if err != nil {
		return err
	}
	return c.Delete(force)
}

// Delete removes a stopped container; force kills a running one first. A
// created container is killed without force, as with runc.
//
// The init's liveness is read once: the usual delete, of a container whose
// init has exited, goes straight to removing the cgroup (which freezes and
// kills only what is left in it) and the state.
func (c *Container) Delete(force bool) error {
	alive := processAlive(c.InitPid, c.InitStart)
	if alive {
		switch st := c.liveStatus(); st {
		case Running, Paused:
			if !force {
				return fmt.Errorf("cannot delete container %s that is not stopped: %s", c.ID, st)
			}
		}
		_ = unix.Kill(c.InitPid, unix.SIGKILL)
	}
	if cg, err := c.LoadCgroup(); err == nil {
		if alive {
			// Thaw first: a frozen process cannot die.
			_ = cg.Thaw()
		}
		if err := cg.Delete(); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", c.Cgroup, err)
		}
	} else if !errors.Is(err, cgroups.ErrNotExist) {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); alive && processAlive(c.InitPid, c.InitStart); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("init %d did not exit after SIGKILL", c.InitPid)
		}
	}
	if c.HostMountNS {
		if err := rootfs.Unmount(c.Rootfs); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return err
	}
	if c.Hooks != nil {
		if err := hooks.Run("poststop", c.Hooks.Poststop, c.hookState(specs.StateStopped)); err != nil {
			return &HookWarning{err}
		}
	}
	return nil
}

// RemoveStale deletes a state directory whose state was never written
// (a create that died half-way).
func RemoveStale(root, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(root, id))
}

// Pids lists the container's processes.
func (c *Container) Pids() ([]int, error) {
	cg, err := c.LoadCgroup()
	if errors.Is(err, cgroups.ErrNotExist) {
		return []int{}, nil
	}
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Pause freezes every process of a running container.
func (c *Container) Pause() error {
	if st := c.Status(); st != Running {
		return fmt.Errorf("%w: %s", ErrNotRunning, st)
	}
	cg, err := c.LoadCgroup()
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if st := c.Status(); st != Paused {
		return fmt.Errorf("container not paused: %s", st)
	}
	cg, err := c.LoadCgroup()
	if err != nil {
		return err
	}
	return cg.Thaw()
}

// Update applies new resource limits to the container's cgroup. Device
// rules are fixed at create: a resources document sent back from `state`
// must not re-open /dev access, so they are dropped (from a copy: the
// caller's document is left as it was).
func (c *Container) Update(res *specs.LinuxResources) error {
	r := *res
	r.Devices = nil
	cg, err := c.LoadCgroup()
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	if err := cg.Update(&r); err != nil {
		return fmt.Errorf("update resources of container %s: %w", c.ID, err)
	}
	return nil
}
