package ociruntime

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/container"
	"github.com/hostnet-dev/hostnet/runtime/logging"
)

// inProcess serves hostnet's own hostnet-runc: the operations that spawn
// nothing call the runtime's packages in the shim, each what the command
// line's command of the same name calls, on the same state root, so none
// costs an exec of the runtime (about 4 ms of start-up each, on every
// container's start and delete).
//
// What spawns processes goes to the command line: create and exec clone
// the container's processes and, to do so, change the calling process
// (locked threads that setns, close_range over its descriptors) in ways
// the shim must never see; and a start or delete whose container has
// poststart or poststop hooks, which are processes the shim's reaper would
// race os/exec for. The operations moved here change nothing process-wide
// in the shim: they read the state directory and /proc, signal pids, write
// cgroupfs files (the freezer, limits), remove cgroups, the state
// directory and, for containers that share the host's mount namespace,
// their mounts, which the command line does from the shim's mount
// namespace too.
type inProcess struct {
	// cli runs what must not run in the shim.
	cli *goRunc
	// root is the runtime's state root, the --root the command line gets.
	root string
	// log is the runtime's JSON log: failures are written there as the
	// command line writes them, for whoever reads it after the shim.
	log string
}

// errCommandLine marks an operation the command line must run instead: it
// would spawn processes (hooks), or the container's state was written by a
// newer hostnet-runc than the shim's own code (an upgrade the long-lived
// shim outlived: container.ErrNewerState).
var errCommandLine = errors.New("the operation is the command line's")

func (r *inProcess) Create(ctx context.Context, id, bundle string, opts *runc.CreateOpts) error {
	return r.cli.Create(ctx, id, bundle, opts)
}

func (r *inProcess) Exec(ctx context.Context, id string, spec specs.Process, opts *runc.ExecOpts) error {
	return r.cli.Exec(ctx, id, spec, opts)
}

// load reads the container's state, or errCommandLine for a state newer
// than this code.
func (r *inProcess) load(id string) (*container.Container, error) {
	c, err := container.Load(r.root, id)
	if errors.Is(err, container.ErrNewerState) {
		return nil, errCommandLine
	}
	return c, err
}

func (r *inProcess) Start(ctx context.Context, id string) error {
	err := r.call(ctx, "start", func() error {
		c, err := r.load(id)
		if err != nil {
			return err
		}
		if c.Hooks != nil && len(c.Hooks.Poststart) > 0 {
			return errCommandLine
		}
		return c.Start(ctx)
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Start(ctx, id)
	}
	return err
}

func (r *inProcess) Kill(ctx context.Context, id string, sig int, all bool) error {
	err := r.call(ctx, "kill", func() error {
		if _, err := r.load(id); errors.Is(err, errCommandLine) {
			return err
		}
		return container.Kill(r.root, id, unix.Signal(sig), all)
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Kill(ctx, id, sig, all)
	}
	return err
}

func (r *inProcess) Delete(ctx context.Context, id string, force bool) error {
	err := r.call(ctx, "delete", func() error {
		// Read twice (here and by container.Delete), at a cost of
		// microseconds, so that the command line's delete stays one
		// function that both call. A state that cannot be read here
		// goes to the command line too, which reports it as it always
		// has: container.Delete must not run poststop hooks in the shim.
		c, err := r.load(id)
		switch {
		case errors.Is(err, container.ErrNotExist):
		case err != nil:
			return errCommandLine
		case c.Hooks != nil && len(c.Hooks.Poststop) > 0:
			return errCommandLine
		}
		return container.Delete(r.root, id, force)
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Delete(ctx, id, force)
	}
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func (r *inProcess) Pause(ctx context.Context, id string) error {
	err := r.call(ctx, "pause", func() error {
		c, err := r.load(id)
		if err != nil {
			return err
		}
		return c.Pause()
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Pause(ctx, id)
	}
	return err
}

func (r *inProcess) Resume(ctx context.Context, id string) error {
	err := r.call(ctx, "resume", func() error {
		c, err := r.load(id)
		if err != nil {
			return err
		}
		return c.Resume()
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Resume(ctx, id)
	}
	return err
}

func (r *inProcess) Ps(ctx context.Context, id string) (pids []int, err error) {
	err = r.call(ctx, "ps", func() error {
		c, err := r.load(id)
		if err != nil {
			return err
		}
		pids, err = c.Pids()
		return err
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Ps(ctx, id)
	}
	return pids, err
}

func (r *inProcess) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	err := r.call(ctx, "update", func() error {
		c, err := r.load(id)
		if err != nil {
			return err
		}
		return c.Update(res)
	})
	if errors.Is(err, errCommandLine) {
		return r.cli.Update(ctx, id, res)
	}
	return err
}

// call runs one operation of the runtime in the shim and reports its
// failure as the command line's would read through goRunc: the same
// message, logged to the runtime's log, and the same class. A panic in the
// runtime's code fails this call, not the shim and its other containers;
// its stack goes to the shim's log.
func (r *inProcess) call(ctx context.Context, op string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.G(ctx).WithField("stack", string(debug.Stack())).Errorf("OCI runtime %s panicked in the shim", op)
			err = r.fail(ctx, op, fmt.Errorf("hostnet-runc %s panicked: %v", op, p))
		}
	}()
	err = fn()
	var warning *container.HookWarning
	switch {
	case err == nil, errors.Is(err, errCommandLine):
		return err
	case errors.As(err, &warning):
		// As the command line: a failed poststart or poststop hook is
		// logged, and the operation succeeds.
		r.writeLog(ctx, func(l *logging.Logger) { l.Warnf("%s", warning) })
		return nil
	}
	return r.fail(ctx, op, err)
}

// fail logs err to the runtime's log, as the command line's report does,
// and classifies it by the runtime's error values. Failures the runtime
// has no value for are classified by their message, the text the command
// line would have logged, so that both launchers class them alike.
func (r *inProcess) fail(ctx context.Context, op string, err error) error {
	r.writeLog(ctx, func(l *logging.Logger) { l.Errorf("%s", err) })
	kind := classify(err.Error())
	if errors.Is(err, container.ErrNotExist) || errors.Is(err, container.ErrNotRunning) {
		kind = errdefs.ErrNotFound
	}
	return runtimeError(op, err.Error(), kind)
}

// writeLog appends to the runtime's JSON log in the command line's format.
func (r *inProcess) writeLog(ctx context.Context, write func(*logging.Logger)) {
	l, err := logging.Open(r.log, "json", false)
	if err != nil {
		log.G(ctx).WithError(err).Warn("cannot write the runtime's log")
		return
	}
	write(l)
	_ = l.Close()
}
