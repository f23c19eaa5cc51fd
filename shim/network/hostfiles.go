package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/spec"
)

// addHostFiles adds the files of a network mode the runtime can mount, see
// mountableHostFiles.
func addHostFiles(s *specs.Spec, bundle string, files []spec.HostFile, res *Result) (changed bool) {
	ok, warnings := mountableHostFiles(s, bundle, files)
	res.Warnings = append(res.Warnings, warnings...)
	return spec.AddHostFiles(s, ok)
}

// mountableHostFiles returns the files of a network mode (the host's or the
// bundle's resolv.conf and hosts) that the runtime can bind-mount into the
// container, and a warning for each of the others.
//
// The runtime creates a missing mount point before it mounts onto it, and
// cannot in a read-only root file system: a snapshot view (`ctr run
// --readonly`, nerdctl's `--read-only`) of an image without /etc/resolv.conf
// or /etc/hosts. The whole container would fail to start, where the runc
// shim, which adds no such files, starts it. Such a container keeps what its
// image has, and the shim's log says what it did not get.
//
// The root file system must be mounted already. What cannot be checked
// (no root, a spec mount above the mount point that may make it writable)
// is kept, and the runtime's own error stands.
func mountableHostFiles(s *specs.Spec, bundle string, files []spec.HostFile) (ok []spec.HostFile, warnings []string) {
	if s.Root == nil || s.Root.Path == "" {
		return files, nil
	}
	root := filepath.Clean(s.Root.Path)
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	for _, f := range files {
		if spec.MountsOn(s, f.Destination) {
			ok = append(ok, f) // AddHostFiles leaves the spec's own mount
			continue
		}
		ro, err := readOnlyMountPoint(s, root, f.Destination)
		if err != nil || !ro {
			ok = append(ok, f)
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s is not given to the container: its root file system is read-only and has no %s to mount it on",
			f.Source, f.Destination))
	}
	return ok, warnings
}

// readOnlyMountPoint reports whether dest is missing from the root file
// system at root and would have to be created on a read-only file system.
// Symlinks are followed inside root, as the runtime does.
func readOnlyMountPoint(s *specs.Spec, root, dest string) (bool, error) {
	// The runtime mounts the spec's mounts first: one above the mount point
	// (a tmpfs on /etc, or on the directory a symlink there points to)
	// decides what the runtime finds, not the root file system.
	underMount := func(p string) bool {
		return slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool {
			d := filepath.Clean(m.Destination)
			return d != "/" && strings.HasPrefix(p, d+"/")
		})
	}
	if underMount(dest) {
		return false, nil
	}
	path, err := securejoin.SecureJoin(root, dest)
	if err != nil {
		return false, err
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return false, err // present, or unknown: nothing to create
	}
	if underMount("/" + strings.TrimPrefix(path, root+"/")) {
		return false, nil
	}
	// The nearest existing directory is where the runtime would create.
	for dir := filepath.Dir(path); strings.HasPrefix(dir+"/", root+"/"); dir = filepath.Dir(dir) {
		var st unix.Statfs_t
		err := unix.Statfs(dir, &st)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return false, err
		}
		return st.Flags&unix.ST_RDONLY != 0, nil
	}
	return false, nil
}
