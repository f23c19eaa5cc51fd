// Package ociruntime drives the OCI runtime (hostnet-runc, or any
// runc-compatible binary) through go-runc for one container, and turns the
// runtime's JSON log into the errors the containerd user sees.
package ociruntime

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config is how the shim runs the OCI runtime for one container. What
// `shim delete` needs to delete the container after its shim died (the
// binary, its root and its cgroup driver) is saved in the bundle
// (bundle.WriteRuntime); the create flags are not.
type Config struct {
	// Binary is the absolute path of the runtime binary.
	Binary string `json:"binary"`
	// Root is the runtime's state directory, namespace included.
	Root          string `json:"root"`
	SystemdCgroup bool   `json:"systemd_cgroup,omitempty"`
	NoPivotRoot   bool   `json:"-"`
	NoNewKeyring  bool   `json:"-"`
}

// Runtime runs OCI runtime commands for the containers of one bundle.
type Runtime struct {
	Config
	log  string
	runc *runc.Runc
}

// New returns a Runtime that runs c.Binary with its JSON log at logPath.
func New(c Config, logPath string) *Runtime {
	return &Runtime{
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

// Create runs `create` for the container id in bundle.
func (r *Runtime) Create(ctx context.Context, id, bundle string, opts *runc.CreateOpts) error {
	opts.NoPivot = r.NoPivotRoot
	opts.NoNewKeyring = r.NoNewKeyring
	return r.do("create", func() error { return r.runc.Create(ctx, id, bundle, opts) })
}

// Start runs `start`, which lets the created init process exec the user's
// program.
func (r *Runtime) Start(ctx context.Context, id string) error {
	return r.do("start", func() error { return r.runc.Start(ctx, id) })
}

// Exec runs `exec --detach` to start an extra process in the container.
func (r *Runtime) Exec(ctx context.Context, id string, spec specs.Process, opts *runc.ExecOpts) error {
	opts.Detach = true
	return r.do("exec", func() error { return r.runc.Exec(ctx, id, spec, opts) })
}

// Kill sends sig to the container's init process, or with all to every
// process in the container.
func (r *Runtime) Kill(ctx context.Context, id string, sig int, all bool) error {
	return r.do("kill", func() error { return r.runc.Kill(ctx, id, sig, &runc.KillOpts{All: all}) })
}

// Delete removes the container's runtime state. A container the runtime does
// not know is already deleted, so that is not an error.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	err := r.do("delete", func() error { return r.runc.Delete(ctx, id, &runc.DeleteOpts{Force: force}) })
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// Pause freezes every process in the container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	return r.do("pause", func() error { return r.runc.Pause(ctx, id) })
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	return r.do("resume", func() error { return r.runc.Resume(ctx, id) })
}

// Ps lists the pids of the container's processes.
func (r *Runtime) Ps(ctx context.Context, id string) (pids []int, err error) {
	err = r.do("ps", func() (err error) {
		pids, err = r.runc.Ps(ctx, id)
		return err
	})
	return pids, err
}

// Update changes the container's resource limits.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	return r.do("update", func() error { return r.runc.Update(ctx, id, res) })
}

// do runs one runtime command and, if it fails, replaces go-runc's "exit
// status 1" with what the runtime logged, the only useful part.
func (r *Runtime) do(op string, fn func() error) error {
	off := logOffset(r.log)
	err := fn()
	if err == nil {
		return nil
	}
	msg := lastErrorSince(r.log, off)
	if msg == "" {
		msg = err.Error()
	}
	if kind := classify(msg); kind != nil {
		return fmt.Errorf("OCI runtime %s failed: %s: %w", op, msg, kind)
	}
	return fmt.Errorf("OCI runtime %s failed: %s", op, msg)
}

// classify maps runtime failures that callers, containerd included, must
// tell apart from real failures to errdefs; nil for everything else.
func classify(msg string) error {
	switch {
	case strings.Contains(msg, "does not exist"),
		strings.Contains(msg, "container not running"),
		strings.Contains(msg, "process already finished"):
		return errdefs.ErrNotFound
	}
	return nil
}
