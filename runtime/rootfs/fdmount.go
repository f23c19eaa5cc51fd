package rootfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mounts made after pivot_root name their source and target by descriptor
// only. open_tree(2), fsmount(2) and move_mount(2) (Linux 5.2) resolve no
// path at all; before them, mount(2) has to go through the descriptors'
// /proc/self/fd links, in the container's own /proc, which is then known
// to be a real procfs (checkProcMount).

// bindFd bind-mounts the file or directory src onto dst.
func bindFd(sys Syscalls, src, dst *os.File) error {
	tree, err := sys.OpenTree(int(src.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOSYS) {
		return sys.Mount(procFd(src), procFd(dst), "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	return attach(sys, tree, dst)
}

// attach mounts the detached mount tree onto dst.
func attach(sys Syscalls, tree int, dst *os.File) error {
	if err := sys.MoveMount(tree, "", int(dst.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// errNoMountAPI reports a kernel without the descriptor-based mount calls.
var errNoMountAPI = errors.New("no open_tree(2)")

// readonlyBind makes the tree at h read-only at its top, as a recursive bind
// mount of itself: the copy is made read-only while still detached, so it
// is never writable in the container.
func readonlyBind(sys Syscalls, h *os.File) error {
	tree, err := sys.OpenTree(int(h.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if errors.Is(err, unix.ENOSYS) {
		return errNoMountAPI
	}
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	if err := sys.MountSetattr(tree, "", unix.AT_EMPTY_PATH, unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return attach(sys, tree, h)
}

// setReadonly makes the mount at f read-only, and changes nothing else.
func setReadonly(sys Syscalls, f *os.File) error {
	err := sys.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if errors.Is(err, unix.ENOSYS) {
		return remountReadonly(sys, procFd(f))
	}
	return err
}

// emptyReadonlyTmpfs returns a detached, empty, read-only tmpfs to cover
// masked directories with, or errNoMountAPI.
func emptyReadonlyTmpfs(sys Syscalls) (int, error) {
	fs, err := sys.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return -1, errNoMountAPI
	}
	if err != nil {
		return -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fs)
	if err := sys.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create tmpfs: %w", err)
	}
	mnt, err := sys.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsmount tmpfs: %w", err)
	}
	return mnt, nil
}

// remountReadonly is the mount(2) fallback of setReadonly: it keeps the
// mount's existing flags (nosuid, nodev, ...), which a bind remount would
// otherwise drop or be refused for.
func remountReadonly(sys Syscalls, path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	return sys.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|statfsFlags(int64(st.Flags)), "")
}
