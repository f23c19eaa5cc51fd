package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	runc "github.com/containerd/go-runc"
)

// exitFile is where, in the bundle, the shim records the init process's exit,
// so that `shim delete` can report it after the shim died.
const exitFile = "hostnet-exit.json"

// WriteExit records the init process's exit in bundle. The file is replaced
// atomically: a crash leaves the old record or none, never half of one.
func WriteExit(bundle string, e runc.Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	path := filepath.Join(bundle, exitFile)
	f, err := atomicfile.New(path, 0o600)
	if err != nil {
		return fmt.Errorf("failed to record exit status in %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Cancel()
		return fmt.Errorf("failed to record exit status in %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to record exit status in %s: %w", path, err)
	}
	return nil
}

// ReadExit returns the exit WriteExit recorded in bundle; the error wraps
// os.ErrNotExist if there is none.
func ReadExit(bundle string) (runc.Exit, error) {
	var e runc.Exit
	path := filepath.Join(bundle, exitFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("failed to parse %s: %w", path, err)
	}
	return e, nil
}
