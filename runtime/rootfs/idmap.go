package rootfs

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Idmapped bind mounts (the idmap and ridmap options, a mount's
// uidMappings and gidMappings) show the source's files with their owners
// mapped through a user namespace: a file the host's uid 0 owns is owned
// by the container's root, and what the container's root writes is owned
// by the host's uid 0. The kernel lets only a process privileged over the
// source's filesystem set MOUNT_ATTR_IDMAP, and only on a mount not yet
// attached: the runtime makes the tree on the host's side and passes its
// descriptor to the init, which attaches it (see container's
// mountSources), as runc does.

// IDMapped reports whether m asks for an idmapped mount: an idmap or
// ridmap option, or mappings of its own.
func IDMapped(m specs.Mount, opts MountOptions) bool {
	return opts.IDMap || m.UIDMappings != nil || m.GIDMappings != nil
}

// IDMappedTree clones the mount at source (and, with rbind, the mounts
// below it) as a detached tree and maps its ids through the user namespace
// userns: only the top mount for idmap and mappings, every mount of the
// tree for ridmap. The caller must be in the container's mount namespace,
// so that the clone keeps the flags that namespace locks, and privileged
// over the source's filesystem.
func IDMappedTree(source string, opts MountOptions, userns *os.File) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if opts.Flags&unix.MS_REC != 0 {
		flags |= unix.AT_RECURSIVE
	}
	// open_tree(2) clones an attached mount here (Linux 5.2), never a
	// detached one, which kernels before 6.15 refuse; mount_setattr(2)
	// (5.12) then maps the still detached clone, and the init attaches it
	// with move_mount(2).
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, flags)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: source, Err: err}
	}
	tree := os.NewFile(uintptr(fd), source)
	attrFlags := uint(unix.AT_EMPTY_PATH)
	if opts.RecursiveIDMap {
		attrFlags |= unix.AT_RECURSIVE
	}
	err = unix.MountSetattr(fd, "", attrFlags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())})
	if err != nil {
		tree.Close()
		hint := ""
		switch {
		case errors.Is(err, unix.ENOSYS):
			hint = " (idmapped mounts need Linux 5.12 or later)"
		case errors.Is(err, unix.EINVAL):
			hint = " (the filesystem may not support idmapped mounts on this kernel)"
		}
		return nil, fmt.Errorf("set MOUNT_ATTR_IDMAP on %s: %w%s", source, err, hint)
	}
	return tree, nil
}

// IDMapSupported reports whether the kernel has mount_setattr(2) (Linux
// 5.12), which idmapped mounts need; whether a filesystem supports them is
// only known when one is made.
func IDMapSupported() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}
