package rootfs

import (
	"errors"
	"fmt"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// PivotRoot makes rootfs the process's root and detaches the old root, so
// nothing of the host's filesystem stays reachable. It uses the
// pivot_root(".", ".") form, which needs no directory inside the new root.
func PivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new root: %w", err)
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	// The old root is now stacked under "."; detach it without letting the
	// unmount propagate back to the host.
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	return unix.Chdir("/")
}

// MoveRoot is the --no-pivot fallback (roots on ramfs cannot be pivoted):
// move the rootfs mount over / and chroot into it.
func MoveRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

// Chroot enters rootfs for a container sharing the host's mount namespace,
// where pivot_root would move the host's own root.
func Chroot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	return unix.Chdir("/")
}

// Finalize applies what must happen inside the new root: masked paths,
// read-only paths and a read-only root.
func Finalize(s *specs.Spec) error {
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, p := range s.Linux.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	for _, p := range s.Linux.MaskedPaths {
		if err := maskPath(root, p); err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	if s.Root != nil && s.Root.Readonly {
		return remountReadonly("/")
	}
	return nil
}

func readonlyPath(root *os.File, p string) error {
	h, err := pathrs.OpenatInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = unix.Mount(procFd(h), procFd(h), "", unix.MS_BIND|unix.MS_REC, "")
	h.Close()
	if err != nil {
		return err
	}
	h, err = pathrs.OpenatInRoot(root, p)
	if err != nil {
		return err
	}
	defer h.Close()
	return remountReadonly(procFd(h))
}

// maskPath hides a file behind /dev/null and a directory behind an empty
// read-only tmpfs.
func maskPath(root *os.File, p string) error {
	h, err := pathrs.OpenatInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.Mount("tmpfs", procFd(h), "tmpfs", unix.MS_RDONLY, "")
	}
	return unix.Mount("/dev/null", procFd(h), "", unix.MS_BIND, "")
}

// remountReadonly keeps the mount's existing flags (nosuid, nodev, ...),
// which a bind remount would otherwise drop or be refused for.
func remountReadonly(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for st2ms, ms := range map[int64]uintptr{
		unix.ST_NOSUID: unix.MS_NOSUID, unix.ST_NODEV: unix.MS_NODEV, unix.ST_NOEXEC: unix.MS_NOEXEC,
		unix.ST_NOATIME: unix.MS_NOATIME, unix.ST_NODIRATIME: unix.MS_NODIRATIME, unix.ST_RELATIME: unix.MS_RELATIME,
	} {
		if st.Flags&st2ms != 0 {
			flags |= ms
		}
	}
	return unix.Mount("", path, "", flags, "")
}
