package ociruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containerd/errdefs"
)

const (
	// DefaultBinary is the OCI runtime the shim drives unless told otherwise.
	DefaultBinary = "hostnet-runc"
	// DefaultRoot is the runtime's state root; each containerd namespace of
	// each containerd has a directory of its own in it (StateRoot).
	DefaultRoot = "/run/containerd/hostnet-runc"
)

// StateRoot is the runtime's --root for the containers containerd keeps in
// namespace, one of whose bundles is bundle: <root>/<namespace>@<instance>.
//
// Several containerds on a host share root (each defaults to DefaultRoot)
// and may each run a container namespace/id. The runtime knows a container
// by its id in the root alone: in a shared directory, one containerd's
// failed create or forced `shim delete` of an id would delete the other's
// container. instance tells them apart, as bridge mode's keys do: the first
// 8 hex digits of the sha256 of the directory the bundle lies in,
// <state>/io.containerd.runtime.v2.task/<namespace>, which is in the state
// directory of the containerd that made it. The namespace stays readable
// for operators (`hostnet-runc --root` ... `list`).
func StateRoot(root, namespace, bundle string) string {
	sum := sha256.Sum256([]byte(filepath.Dir(filepath.Clean(bundle))))
	return filepath.Join(root, namespace+"@"+hex.EncodeToString(sum[:4]))
}

// ResolveBinary returns the absolute path of the runtime binary called name.
//
// A bare name is looked up next to the shim's own executable first, so that
// a shim and runtime installed together are used together whatever $PATH
// says, then on $PATH. Names with a slash are used as given.
func ResolveBinary(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("failed to locate shim executable: %w", err)
	}
	return resolveBinary(name, filepath.Dir(self), exec.LookPath)
}

// ResolveBinaryFrom is ResolveBinary for a shim installed in shimDir
// whose $PATH lookPath searches: where that shim will find its runtime
// (`hostnet doctor` asks it for containerd's shim).
func ResolveBinaryFrom(name, shimDir string, lookPath func(string) (string, error)) (string, error) {
	return resolveBinary(name, shimDir, lookPath)
}

func resolveBinary(name, shimDir string, lookPath func(string) (string, error)) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty runtime binary name: %w", errdefs.ErrInvalidArgument)
	}
	if filepath.Base(name) != name {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		if err := checkExecutable(abs); err != nil {
			return "", fmt.Errorf("runtime binary %s: %v: set BinaryName in the runtime options to an executable runc-compatible runtime: %w", abs, err, errdefs.ErrFailedPrecondition) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
		}
		return abs, nil
	}
	if shimDir != "" {
		p := filepath.Join(shimDir, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	p, err := lookPath(name)
	if err != nil {
		return "", fmt.Errorf("runtime binary %q not found next to the shim (%s) or in $PATH: install it there or set BinaryName in the runtime options: %w", name, shimDir, errdefs.ErrFailedPrecondition)
	}
	return filepath.Abs(p)
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
