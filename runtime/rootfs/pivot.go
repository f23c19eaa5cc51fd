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
func PivotRoot(sys Syscalls, rootfs string) error {
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
	if err := sys.Fchdir(newroot); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	if err := sys.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	// The old root is now stacked under "."; detach it without letting the
	// unmount propagate back to the host.
	if err := sys.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	if err := sys.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := sys.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	return sys.Chdir("/")
}

// MoveRoot is the --no-pivot fallback (roots on ramfs cannot be pivoted):
// move the rootfs mount over / and chroot into it.
func MoveRoot(sys Syscalls, rootfs string) error {
	if err := sys.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := sys.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs to /: %w", err)
	}
	if err := sys.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return sys.Chdir("/")
}

// Chroot enters rootfs for a container sharing the host's mount namespace,
// where pivot_root would move the host's own root.
func Chroot(sys Syscalls, rootfs string) error {
	if err := sys.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := sys.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	return sys.Chdir("/")
}

// Finalize applies what must happen inside the new root: read-only paths,
// masked paths and a read-only root. Every mount is made by descriptor:
// nothing of the container's (its /proc, its /dev) names a source or a
// target by path.
func Finalize(sys Syscalls, s *specs.Spec) error {
	root, err := sys.OpenRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	for _, p := range s.Linux.ReadonlyPaths {
		if err := readonlyPath(sys, root, p); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	m := masker{sys: sys, root: root}
	defer m.close()
	for _, p := range s.Linux.MaskedPaths {
		if err := m.mask(p); err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	if s.Root != nil && s.Root.Readonly {
		if err := setReadonly(sys, root); err != nil {
			return fmt.Errorf("make the root read-only: %w", err)
		}
	}
	return nil
}

func readonlyPath(sys Syscalls, root *os.File, p string) error {
	h, err := pathrs.OpenatInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = readonlyBind(sys, h)
	h.Close()
	if !errors.Is(err, errNoMountAPI) {
		return err
	}
	// mount(2) binds first, then remounts the new top mount read-only.
	if h, err = pathrs.OpenatInRoot(root, p); err != nil {
		return err
	}
	err = sys.Mount(procFd(h), procFd(h), "", unix.MS_BIND|unix.MS_REC, "")
	h.Close()
	if err != nil {
		return err
	}
	if h, err = pathrs.OpenatInRoot(root, p); err != nil {
		return err
	}
	defer h.Close()
	return remountReadonly(sys, procFd(h))
}

// masker hides files behind the container's /dev/null and directories
// behind an empty read-only tmpfs.
type masker struct {
	sys     Syscalls
	root    *os.File
	devNull *os.File // checked to be the null device
}

func (m *masker) mask(p string) error {
	h, err := pathrs.OpenatInRoot(m.root, p)
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
		return maskDir(m.sys, h)
	}
	if m.devNull == nil {
		if m.devNull, err = openDevNull(m.root); err != nil {
			return err
		}
	}
	return bindFd(m.sys, m.devNull, h)
}

// maskDir covers the directory at h with a tmpfs of its own, as runc does.
// One detached tmpfs cloned for every directory would save superblocks, but
// older kernels refuse open_tree(2) on a detached mount (EINVAL on 6.1).
func maskDir(sys Syscalls, h *os.File) error {
	tree, err := emptyReadonlyTmpfs(sys)
	if errors.Is(err, errNoMountAPI) {
		return sys.Mount("tmpfs", procFd(h), "tmpfs", unix.MS_RDONLY, "")
	}
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	return attach(sys, tree, h)
}

func (m *masker) close() {
	if m.devNull != nil {
		m.devNull.Close()
	}
}

// openDevNull opens the container's /dev/null, which /dev bind-mounted from
// a directory the image or a pod author controls can make anything; its
// descriptor must be the 1:3 character device (CVE-2025-31133). It is
// opened from root, the process's root directory, exactly as an open of
// "/dev/null" would resolve it.
func openDevNull(root *os.File) (*os.File, error) {
	fd, err := unix.Openat(int(root.Fd()), "dev/null", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the container's /dev/null: %w", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/null")
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat the container's /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		f.Close()
		return nil, fmt.Errorf("the container's /dev/null is not the null device (mode %#o, device %d:%d)",
			st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return f, nil
}
