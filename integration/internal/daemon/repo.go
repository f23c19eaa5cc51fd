package daemon

import (
	"errors"
	"os"
	"path/filepath"
)

// RepoRoot returns the directory holding go.mod, searching upwards from the
// working directory (go test runs in the package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// DefaultRuntimeRoot is the state root the shim of runtime passes to its
// OCI runtime (runc's --root), unless the shim's options say otherwise.
// HOSTNET_RUNTIME_ROOT overrides it for the hostnet runtime.
func DefaultRuntimeRoot(runtime string) string {
	switch runtime {
	case RuncRuntime:
		return "/run/containerd/runc"
	case HostnetRuntime:
		if r := os.Getenv("HOSTNET_RUNTIME_ROOT"); r != "" {
			return r
		}
		return "/run/containerd/hostnet-runc"
	}
	return ""
}

// BinDir is where the binaries under test are: $HOSTNET_BIN_DIR, or the
// repository's bin/ (make build).
func BinDir() (string, error) {
	if dir := os.Getenv("HOSTNET_BIN_DIR"); dir != "" {
		return dir, nil
	}
	repo, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(repo, "bin"), nil
}
