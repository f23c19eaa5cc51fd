package hoststate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Files is what existed under some host directories (CNI's state, say),
// so that a lane can remove what its containers added there and nothing
// else.
type Files struct {
	dirs []string
	seen map[string]bool
}

// TakeFiles records every path under dirs; a missing dir is empty.
func TakeFiles(dirs ...string) (*Files, error) {
	seen, err := walk(dirs)
	if err != nil {
		return nil, err
	}
	return &Files{dirs: dirs, seen: seen}, nil
}

func walk(dirs []string) (map[string]bool, error) {
	seen := map[string]bool{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			seen[p] = true
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return seen, nil
}

// RemoveNew removes the files that appeared since f was taken and that
// ours says are the lane's, then the directories that appeared and are
// left empty, deepest first.
func (f *Files) RemoveNew(ours func(path string) bool) error {
	now, err := walk(f.dirs)
	if err != nil {
		return err
	}
	var dirs []string
	for p := range now {
		if f.seen[p] {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			continue
		}
		if ours(p) {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, dir := range dirs {
		_ = os.Remove(dir) // fails, and stays, when something else is in it
	}
	return nil
}
