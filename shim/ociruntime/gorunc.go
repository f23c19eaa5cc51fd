package ociruntime

import (
	"context"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// goRunc runs every operation as a command of the runtime's command line,
// through go-runc: for any runc-compatible runtime (runc, crun, a wrapper),
// and for hostnet-runc's create and exec, which spawn the container's
// processes and must not run inside the shim.
type goRunc struct {
	Config
	log  string
	runc *runc.Runc
}

func newGoRunc(c Config, logPath string) *goRunc {
	return &goRunc{
		Config: c,
		log:    logPath,
		runc: &runc.Runc{
			Command:   c.Binary,
			Root:      c.Root,
			Log:       logPath,
			LogFormat: runc.JSON,
			// A runtime left behind by a dead shim would hold the container
			// half-created forever.
			PdeathSignal:  unix.SIGKILL,
			SystemdCgroup: c.SystemdCgroup,
		},
	}
}

func (r *goRunc) Create(ctx context.Context, id, bundle string, opts *runc.CreateOpts) error {
	opts.NoPivot = r.NoPivotRoot
	opts.NoNewKeyring = r.NoNewKeyring
	return r.do("create", func() error { return r.runc.Create(ctx, id, bundle, opts) })
}

func (r *goRunc) Start(ctx context.Context, id string) error {
	return r.do("start", func() error { return r.runc.Start(ctx, id) })
}

func (r *goRunc) Exec(ctx context.Context, id string, spec specs.Process, opts *runc.ExecOpts) error {
	opts.Detach = true
	return r.do("exec", func() error { return r.runc.Exec(ctx, id, spec, opts) })
}

func (r *goRunc) Kill(ctx context.Context, id string, sig int, all bool) error {
	return r.do("kill", func() error { return r.runc.Kill(ctx, id, sig, &runc.KillOpts{All: all}) })
}

func (r *goRunc) Delete(ctx context.Context, id string, force bool) error {
	err := r.do("delete", func() error { return r.runc.Delete(ctx, id, &runc.DeleteOpts{Force: force}) })
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func (r *goRunc) Pause(ctx context.Context, id string) error {
	return r.do("pause", func() error { return r.runc.Pause(ctx, id) })
}

func (r *goRunc) Resume(ctx context.Context, id string) error {
	return r.do("resume", func() error { return r.runc.Resume(ctx, id) })
}

func (r *goRunc) Ps(ctx context.Context, id string) (pids []int, err error) {
	err = r.do("ps", func() (err error) {
		pids, err = r.runc.Ps(ctx, id)
		return err
	})
	return pids, err
}

func (r *goRunc) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	return r.do("update", func() error { return r.runc.Update(ctx, id, res) })
}

// do runs one runtime command and, if it fails, replaces go-runc's "exit
// status 1" with what the runtime logged, the only useful part.
func (r *goRunc) do(op string, fn func() error) error {
	off := logOffset(r.log)
	err := fn()
	if err == nil {
		return nil
	}
	msg := lastErrorSince(r.log, off)
	if msg == "" {
		msg = err.Error()
	}
	return runtimeError(op, msg, classify(msg))
}
