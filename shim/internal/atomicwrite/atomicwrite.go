// Package atomicwrite replaces files so that a reader sees the old content
// or the new, never part of either, and a crash leaves one of them whole.
package atomicwrite

import (
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
)

// WriteFile replaces path with data, with mode perm: containerd's atomicfile
// writes a temporary file beside it, syncs it and renames it over path.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := atomicfile.New(path, perm)
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Cancel()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
