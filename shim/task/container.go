package task

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/console"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
	"github.com/hostnet-dev/hostnet/shim/process"
	"github.com/hostnet-dev/hostnet/shim/procio"
	"github.com/hostnet-dev/hostnet/spec"
)

// ioDrainTimeout bounds how long deleting a process waits for its output to
// reach the client.
const ioDrainTimeout = 10 * time.Second

// container is one task: its runtime, rootfs, init process and execs.
type container struct {
	id     string
	bundle bundle.Bundle
	rt     ociruntime.Launcher
	// ioUID and ioGID own the stdio pipes of the container's processes.
	ioUID, ioGID int
	init         *process.Process
	oom          *oomWatcher // nil if the cgroup cannot be watched
	// killAllOnExit is set for containers without a pid namespace of
	// their own: the init's exit does not kill what it leaves behind.
	killAllOnExit bool
	// hardened containers' exec'd processes are hardened like the init.
	hardened bool

	// cgroup is the container's, loaded at create; nil if it could not be.
	cgroup *containerCgroup

	// Guarded by the service's exitMu, which orders exec starts against the
	// init's exit without being held across any runtime call.
	//
	// initExited is set once the init's exit is seen: no exec starts after.
	initExited bool
	// execsLive counts the execs being started or running whose TaskExit is
	// not queued yet; the init's TaskExit waits for it to reach zero, as
	// containerd expects the init's exit to be the container's last.
	execsLive int
	// execsDone is closed when execsLive drops to zero while the init's
	// exit waits for that.
	execsDone chan struct{}

	// deleteMu makes the init's delete one at a time: containerd's CRI
	// deletes an exited task from its event monitor while a client (a
	// pod's removal, `ctr`) may delete it too, and the teardown must run
	// once.
	deleteMu sync.Mutex

	mu    sync.Mutex
	execs map[string]*execProcess
}

type execProcess struct {
	*process.Process
	spec specs.Process
	// starting is set, under the service's exitMu, while Start runs the
	// runtime for this exec: it cannot be started twice, nor deleted.
	starting bool
}

// createContainer prepares the bundle and has the runtime create the init
// process. On failure it leaves nothing behind: no mount, no network, no
// runtime state (Teardown).
func createContainer(ctx context.Context, r *taskAPI.CreateTaskRequest, epoller *console.Epoller) (_ *container, retErr error) {
	if r.Checkpoint != "" {
		return nil, fmt.Errorf("restoring from a checkpoint is not supported by the hostnet shim: %w", errdefs.ErrNotImplemented)
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	set, err := config.FromOptions(r.Options, ns, r.Bundle)
	if err != nil {
		return nil, err
	}
	b := bundle.New(r.Bundle)
	c := &container{
		id:     r.ID,
		bundle: b,
		rt:     ociruntime.New(set.Runtime, b.RuntimeLog()),
		ioUID:  set.IoUID,
		ioGID:  set.IoGID,
		execs:  make(map[string]*execProcess),
	}
	// The spec is read once, here: the network mode rewrites this value,
	// the shim takes what it needs from it, and the runtime gets it from
	// the one write below.
	spec, err := b.ReadSpec()
	if err != nil {
		return nil, err
	}
	// Whatever failed, Teardown undoes what was done: each of its steps
	// finds what it undoes in the bundle. The runtime's state, only once
	// the runtime was asked to create it: the id may be another's.
	var created ociruntime.Launcher
	defer func() {
		if retErr != nil {
			if err := Teardown(context.WithoutCancel(ctx), b, r.ID, created, true); err != nil {
				log.G(ctx).WithError(err).WithField("id", r.ID).Warn("failed to clean up after a failed create")
			}
		}
	}()
	// Begun before the root file system is mounted, which the network mode
	// checks for the files it mounts into it: what the mode asks of
	// containerd (ctr's --cni mark) is asked meanwhile.
	netPrep := network.Begin(ctx, network.Request{Bundle: b, ID: r.ID, Namespace: ns, Config: set.Network}, spec)
	defer netPrep.Close()
	if len(r.Rootfs) > 0 {
		if err := mountRootfs(r, b); err != nil {
			return nil, err
		}
	}
	netRes, err := netPrep.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	// At info: the mode is the first thing an admin asks about a container.
	log.G(ctx).WithFields(log.Fields{"id": r.ID, "mode": netRes.Mode, "why": netRes.Why}).Info("network mode")
	if err := b.WriteMode(bundle.Mode{Mode: string(netRes.Mode), Why: netRes.Why}); err != nil {
		return nil, fmt.Errorf("failed to save network mode: %w", err)
	}
	for _, w := range netRes.Warnings {
		log.G(ctx).WithField("id", r.ID).Warn(w)
	}
	if netRes.SpecChanged {
		if err := b.WriteSpec(spec); err != nil {
			return nil, err
		}
	}
	if err := b.WriteRuntime(set.Runtime); err != nil {
		return nil, fmt.Errorf("failed to save runtime config: %w", err)
	}
	c.killAllOnExit = killAllOnExit(spec)
	c.hardened = netRes.Hardened

	sio := stdio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	pio, err := procio.New(r.ID, sio, c.ioUID, c.ioGID, epoller)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			pio.Close(0)
		}
	}()

	opts := &runc.CreateOpts{PidFile: b.InitPidFile()}
	pio.ApplyCreate(opts)
	// A failed create may still have left state behind.
	created = c.rt
	if err := c.rt.Create(ctx, r.ID, r.Bundle, opts); err != nil {
		return nil, err
	}
	if err := pio.Start(ctx); err != nil {
		return nil, err
	}
	pid, err := b.ReadInitPid()
	if err != nil {
		return nil, fmt.Errorf("failed to read init pid of %s: %w", r.ID, err)
	}
	c.init = process.New(r.ID, sio)
	c.init.SetCreated(pid, pio)
	return c, nil
}

// mountRootfs mounts the root file system containerd handed the shim at the
// bundle's rootfs; Teardown unmounts it.
func mountRootfs(r *taskAPI.CreateTaskRequest, b bundle.Bundle) error {
	rootfs := b.Rootfs()
	if err := os.Mkdir(rootfs, 0o711); err != nil && !os.IsExist(err) {
		return fmt.Errorf("failed to create rootfs mountpoint: %w", err)
	}
	mounts := make([]mount.Mount, 0, len(r.Rootfs))
	for _, m := range r.Rootfs {
		mounts = append(mounts, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if err := mount.All(mounts, rootfs); err != nil {
		// mount.All may have mounted some of them: Teardown unmounts them.
		return fmt.Errorf("failed to mount rootfs of %s: %w", r.ID, err)
	}
	return nil
}

// process returns the init process for an empty execID, else that exec.
func (c *container) process(execID string) (*process.Process, error) {
	if execID == "" {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %s in container %s: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return e.Process, nil
}

func (c *container) exec(execID string) (*execProcess, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %s in container %s: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return e, nil
}

// startExec has the runtime start a created exec and connects its stdio.
// The caller has marked e as starting; no lock is held.
func (c *container) startExec(ctx context.Context, e *execProcess, epoller *console.Epoller) (retErr error) {
	pio, err := procio.New(c.id, e.Stdio, c.ioUID, c.ioGID, epoller)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			pio.Close(0)
		}
	}()
	pidFile, err := c.bundle.NewExecPidFile()
	if err != nil {
		return err
	}
	defer os.Remove(pidFile)

	spec := e.spec
	if ws, ok := e.PendingWinsize(); ok {
		// The runtime sizes the terminal before the program runs; resizing
		// the master once the shim has it would be too late for a program
		// that reads its size at once.
		spec.ConsoleSize = &specs.Box{Height: uint(ws.Height), Width: uint(ws.Width)}
	}
	opts := &runc.ExecOpts{PidFile: pidFile}
	pio.ApplyExec(opts)
	if err := c.rt.Exec(ctx, c.id, spec, opts); err != nil {
		return err
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		return fmt.Errorf("failed to read pid of exec %s: %w", e.ID, err)
	}
	// From here on the process runs: record it even if its stdio fails, so
	// that its exit is still seen.
	e.SetCreated(pid, pio)
	if err := e.SetRunning(); err != nil {
		return err
	}
	if err := pio.Start(ctx); err != nil {
		return fmt.Errorf("failed to connect stdio of exec %s: %w", e.ID, err)
	}
	return nil
}

// killAllOnExit reports whether the init's exit must be followed by killing
// every process left in the container: unless it has a new pid namespace of
// its own, whose processes the kernel kills with its init. This is the runc
// shim's rule (runc.ShouldKillAllOnExit), taken from the spec the shim
// parsed at create instead of a config.json read again at every exit.
func killAllOnExit(s *specs.Spec) bool {
	return !spec.NewNamespace(s, specs.PIDNamespace)
}

// deleteInit removes the container once its init process has exited, or
// was never started.
func (c *container) deleteInit(ctx context.Context) error {
	c.deleteMu.Lock()
	defer c.deleteMu.Unlock()
	switch st := c.init.State(); st {
	case process.Deleted:
		// Lost a race with another delete, which did the work. Not found,
		// as runc's shim answers: containerd then finishes its own delete
		// instead of keeping a task no delete can remove.
		return fmt.Errorf("cannot delete a deleted process %s: %w", c.id, errdefs.ErrNotFound)
	case process.Stopped:
	case process.Created:
		// Deleting kills the waiting init; let its exit be published first.
		if err := c.rt.Delete(ctx, c.id, true); err != nil {
			return err
		}
		select {
		case <-c.init.Exited():
		case <-time.After(ioDrainTimeout):
			log.G(ctx).WithField("id", c.id).Warn("init process did not exit after delete")
		}
	default:
		return fmt.Errorf("cannot delete container %s: init process is %s: %w", c.id, st, errdefs.ErrFailedPrecondition)
	}
	if pio := c.init.IO(); pio != nil {
		pio.Close(ioDrainTimeout)
	}
	c.mu.Lock()
	execs := make([]*execProcess, 0, len(c.execs))
	for _, e := range c.execs {
		execs = append(execs, e)
	}
	c.mu.Unlock()
	for _, e := range execs {
		if pio := e.IO(); pio != nil {
			pio.Close(0)
		}
	}
	if c.oom != nil {
		c.oom.close()
	}
	if err := Teardown(ctx, c.bundle, c.id, c.rt, false); err != nil {
		return err
	}
	// The runtime's state is gone: containerd's `shim delete` after this
	// delete (on its critical path) need not exec the runtime again.
	if err := c.bundle.RemoveRuntime(); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("failed to remove the runtime record")
	}
	return c.init.SetDeleted()
}
