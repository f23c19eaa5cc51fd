package ociruntime

import (
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
	// DefaultRoot is the runtime's state root; the containerd namespace is
	// appended so that namespaces cannot see each other's containers.
	DefaultRoot = "/run/containerd/hostnet-runc"
)

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
			return "", fmt.Errorf("runtime binary %s: %v: set BinaryName in the runtime options to an executable runc-compatible runtime: %w", abs, err, errdefs.ErrFailedPrecondition)
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
