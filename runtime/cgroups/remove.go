package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	ocgroups "github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// gone reports an error from a cgroup that was removed while it was being
// read: ENOENT once the directory is gone, ENODEV from a cgroup.procs
// opened before the rmdir and read after it. The kernel removes only an
// empty cgroup, so a gone cgroup had no processes.
func gone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV)
}

// treePids lists the processes of the cgroup at dir and of every cgroup
// below it, each read with pidsOf (runc's reader, ocgroups.GetPids). A
// cgroup below dir that goes away while the tree is read (the container's
// own, or one a concurrent delete removes) counts as empty, as it was:
// failing on it made delete fail with "read .../cgroup.procs: no such
// device". dir itself gone is an error that wraps os.ErrNotExist.
func treePids(dir string, pidsOf func(dir string) ([]int, error)) ([]int, error) {
	var all []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			return nil
		}
		if err == nil {
			var pids []int
			pids, err = pidsOf(p)
			all = append(all, pids...)
		}
		switch {
		case err == nil:
			return nil
		case p != dir && gone(err):
			return fs.SkipDir
		case p == dir && errors.Is(err, unix.ENODEV):
			return &os.PathError{Op: "read", Path: p, Err: os.ErrNotExist}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if all == nil {
		all = []int{}
	}
	return all, nil
}

// removeTree removes a cgroup directory and the cgroups below it as runc
// does (ocgroups.RemovePath): deepest first, a cgroup already gone is not
// an error, and EBUSY is retried for about a second while the last
// processes leave.
func removeTree(dir string) error { return ocgroups.RemovePath(dir) }
