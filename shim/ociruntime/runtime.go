// Package ociruntime runs the OCI runtime (hostnet-runc, or any
// runc-compatible binary) for one container, and turns the runtime's
// failures into the errors the containerd user sees.
//
// Two launchers share one interface: goRunc execs the runtime's command
// line through go-runc for every operation, and serves any runtime; for
// hostnet's own hostnet-runc, inProcess runs the operations that spawn
// nothing (start, kill, delete, pause, resume, ps, update) in the shim,
// calling the runtime's packages, and saves an exec of the runtime for
// each. Both keep the state in the same root and layout, so
// `hostnet-runc --root ...` from a shell sees and handles the containers
// either way.
package ociruntime

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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

// Launcher runs the OCI runtime's operations on the containers of one
// bundle. Failures read as the runtime reported them, prefixed with the
// operation ("OCI runtime start failed: ..."), and wrap errdefs'
// ErrNotFound where containerd must tell a gone container or process from
// a real failure (classify).
type Launcher interface {
	// Create runs `create` for the container id in bundle.
	Create(ctx context.Context, id, bundle string, opts *runc.CreateOpts) error
	// Start lets the created init process exec the user's program.
	Start(ctx context.Context, id string) error
	// Exec starts an extra process in the container, detached.
	Exec(ctx context.Context, id string, spec specs.Process, opts *runc.ExecOpts) error
	// Kill sends sig to the container's init process, or with all to
	// every process in the container.
	Kill(ctx context.Context, id string, sig int, all bool) error
	// Delete removes the container's runtime state. A container the
	// runtime does not know is already deleted, so that is not an error.
	Delete(ctx context.Context, id string, force bool) error
	// Pause freezes every process in the container.
	Pause(ctx context.Context, id string) error
	// Resume thaws a paused container.
	Resume(ctx context.Context, id string) error
	// Ps lists the pids of the container's processes.
	Ps(ctx context.Context, id string) ([]int, error)
	// Update changes the container's resource limits.
	Update(ctx context.Context, id string, res *specs.LinuxResources) error
}

// New returns the launcher for c.Binary, with the runtime's JSON log at
// logPath: in-process when c.Binary is the hostnet-runc the shim finds by
// default (ResolveBinary(DefaultBinary)), go-runc for anything else.
func New(c Config, logPath string) Launcher {
	own, err := ResolveBinary(DefaultBinary)
	if err != nil {
		own = ""
	}
	return newLauncher(c, logPath, own)
}

// newLauncher is New with ownRuntime, the path of hostnet's own
// hostnet-runc ("" if there is none), given.
//
// The binary is compared by file, not by name: BinaryName may be a
// symlink or another path to the same hostnet-runc, and a wrapper script
// or another build at a path that happens to end in hostnet-runc is not the
// runtime compiled into this shim. The shim and its default hostnet-runc
// are installed together, from one build.
func newLauncher(c Config, logPath, ownRuntime string) Launcher {
	cli := newGoRunc(c, logPath)
	if ownRuntime != "" && sameFile(c.Binary, ownRuntime) {
		return &inProcess{cli: cli, root: c.Root, log: logPath}
	}
	return cli
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// runtimeError is a failed operation as the containerd user sees it: msg
// is what the runtime reported, kind its class (classify), if any.
func runtimeError(op, msg string, kind error) error {
	if kind != nil {
		return fmt.Errorf("OCI runtime %s failed: %s: %w", op, msg, kind)
	}
	return fmt.Errorf("OCI runtime %s failed: %s", op, msg)
}

// classify maps runtime failures that callers, containerd included, must
// tell apart from real failures to errdefs; nil for everything else. It
// reads the message the runtime logged, the only thing a runtime's command
// line leaves.
func classify(msg string) error {
	switch {
	case strings.Contains(msg, "does not exist"),
		strings.Contains(msg, "container not running"),
		strings.Contains(msg, "process already finished"):
		return errdefs.ErrNotFound
	}
	return nil
}
