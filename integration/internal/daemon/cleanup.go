package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Stop tears the daemon and everything it started down, in this order:
// tasks are killed and deleted, containers and their snapshots deleted,
// the daemon is stopped by pid, container processes and shims that outlived
// it are killed by pid, mounts under Dir are unmounted, the cgroups and
// runtime state left below the test namespace are removed, and Dir is
// removed. Stopping the daemon before the sweep means no new shim can
// appear behind it, even if tests are still running (an interrupt). Stop
// goes on past errors and returns all of them; it is safe to call on a
// daemon that failed to start or has already been stopped.
func (d *Daemon) Stop() error {
	var errs []error
	if d.cmd != nil && d.cmd.Process != nil && !d.exited() {
		errs = append(errs, d.deleteAll())
		errs = append(errs, d.stopDaemon())
	}
	if d.command == nil {
		errs = append(errs, d.killLeftoverProcesses())
	}
	if d.log != nil {
		d.log.Close()
	}
	errs = append(errs, d.unmountAll())
	if d.command == nil {
		errs = append(errs, d.removeCgroups())
	}
	for _, root := range d.runtimeRoots {
		for _, rt := range []string{HostnetRuntime, RuncRuntime} {
			errs = append(errs, os.RemoveAll(d.RuntimeStateRoot(rt, root)))
		}
	}
	if mounts, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(d.Dir)); len(mounts) > 0 {
		// Never recurse into something still mounted.
		errs = append(errs, fmt.Errorf("not removing %s: %d mounts left below it", d.Dir, len(mounts)))
	} else if d.Dir != "" {
		errs = append(errs, os.RemoveAll(d.Dir))
	}
	return errors.Join(errs...)
}

func (d *Daemon) exited() bool {
	select {
	case err := <-d.exitc:
		d.exitc <- err
		return true
	default:
		return false
	}
}

// deleteAll kills and deletes every task and container in every namespace
// of the daemon, the way a user would with ctr.
func (d *Daemon) deleteAll() error {
	c, err := client.New(d.Address, client.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect for cleanup: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		containers, err := c.Containers(nctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ctr := range containers {
			errs = append(errs, deleteContainer(nctx, ctr))
		}
	}
	return errors.Join(errs...)
}

func deleteContainer(ctx context.Context, ctr client.Container) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
			return fmt.Errorf("delete task %s: %w", ctr.ID(), err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container %s: %w", ctr.ID(), err)
	}
	return nil
}

// killLeftoverProcesses kills container init processes, by the pids the
// shims recorded in containerd's state directory, and then this daemon's
// shims that outlived their tasks.
func (d *Daemon) killLeftoverProcesses() error {
	var errs []error
	bundles, _ := filepath.Glob(filepath.Join(d.State, "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		if pid, err := readPid(filepath.Join(b, "init.pid")); err == nil {
			errs = append(errs, killPid(pid, func(string) bool { return true }))
		}
	}
	shims, err := d.ShimPids()
	if err != nil {
		errs = append(errs, err)
	}
	for _, pid := range shims {
		errs = append(errs, killPid(pid, func(argv0 string) bool {
			return strings.HasPrefix(filepath.Base(argv0), "containerd-shim")
		}))
	}
	return errors.Join(errs...)
}

// killPid sends SIGKILL to pid if it is alive and its argv[0] passes match
// (guarding against a recycled pid), and waits for it to disappear.
func killPid(pid int, match func(argv0 string) bool) error {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		return nil // gone, or a zombie
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if !match(argv0) {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d (%s): %w", pid, argv0, err)
	}
	if !WaitGone(pid, 10*time.Second) {
		return fmt.Errorf("pid %d (%s) survived SIGKILL", pid, argv0)
	}
	return nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// WaitGone polls until pid is gone or a zombie, or the timeout expires.
func WaitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func (d *Daemon) stopDaemon() error {
	if d.tracedPid != 0 {
		// strace exits once containerd (its last tracee) has.
		_ = unix.Kill(d.tracedPid, unix.SIGTERM)
	} else {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	// The exit status goes back into exitc: exited() reads it there, so a
	// second Stop knows the daemon is gone.
	select {
	case err := <-d.exitc:
		d.exitc <- err
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = d.cmd.Process.Kill()
	d.exitc <- <-d.exitc
	return errors.New("containerd ignored SIGTERM and was killed")
}

// unmountAll detaches every mount at or below Dir, deepest first.
func (d *Daemon) unmountAll() error {
	if d.Dir == "" {
		return nil
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(d.Dir))
	if err != nil {
		return err
	}
	slices.SortFunc(mounts, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

// CgroupMounts returns the mount points of every cgroup v1 hierarchy and
// of the cgroup v2 hierarchy.
func CgroupMounts() ([]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	return out, nil
}

// removeCgroups removes the cgroups below /<Namespace> in every hierarchy,
// the parent ctr and the client give to containers of that namespace. It
// kills any process still in them first; rmdir only removes empty cgroups,
// so nothing outside the test's own tree can be affected.
func (d *Daemon) removeCgroups() error {
	if d.Namespace == "" {
		return nil
	}
	roots, err := CgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, root := range roots {
		errs = append(errs, removeCgroupTree(filepath.Join(root, d.Namespace)))
	}
	return errors.Join(errs...)
}

func removeCgroupTree(top string) error {
	var dirs []string
	err := filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, dir := range slices.Backward(dirs) {
		for _, pid := range cgroupProcs(dir) {
			errs = append(errs, killPid(pid, func(string) bool { return true }))
		}
		if err := rmdirRetry(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func cgroupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rmdirRetry removes a cgroup directory, retrying while the kernel still
// counts dying tasks in it.
func rmdirRetry(dir string) error {
	var err error
	for range 50 {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("rmdir %s: %w", dir, err)
}

// StopOnInterrupt makes SIGINT and SIGTERM stop the daemon, as Stop does,
// and exit with status 130, so an interrupted test run leaves nothing
// behind either. The returned function undoes it.
func (d *Daemon) StopOnInterrupt() (undo func()) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigc:
			fmt.Fprintf(os.Stderr, "%v: stopping containerd %d and cleaning up\n", sig, d.Pid())
			if err := d.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "teardown:", err)
			}
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigc)
		close(done)
	}
}
