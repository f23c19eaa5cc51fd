package rootfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// Syscalls are the system calls that change the container's mounts and
// root, the ones whose order and arguments are the decisions of this
// package: what gets mounted where, masked, made read-only, pivoted into.
// Linux makes them; tests pass a recording double (runtime/internal/systest)
// to check those decisions without root, as youki's Syscall trait does.
//
// Everything else stays direct and real, in tests too: opening and
// resolving the targets (openat2, filepath-securejoin), fstat and statfs
// checks, creating directories. So the seam carries only descriptors and
// the strings mount(2) already took: a target is still named by the
// /proc/self/fd link of a handle checked beforehand, never by a path.
type Syscalls interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	OpenTree(dirfd int, path string, flags uint) (int, error)
	MoveMount(fromDirfd int, fromPath string, toDirfd int, toPath string, flags int) error
	MountSetattr(dirfd int, path string, flags uint, attr unix.MountAttr) error
	Fsopen(fsName string, flags int) (int, error)
	FsconfigCreate(fd int) error
	Fsmount(fd int, flags int, attrs int) (int, error)
	PivotRoot(newroot, putold string) error
	Chroot(path string) error
	Chdir(path string) error
	Fchdir(fd int) error
	Mknodat(dirfd int, path string, mode uint32, dev int) error
	Fchownat(dirfd int, path string, uid, gid, flags int) error
	// OpenRoot opens the process's root directory as an O_PATH handle:
	// the container's once pivot_root or chroot made it so.
	OpenRoot() (*os.File, error)
}

// Linux makes the system calls of Syscalls. It holds nothing: a value of
// it in an interface costs no allocation.
type Linux struct{}

var _ Syscalls = Linux{}

func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (Linux) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

func (Linux) OpenTree(dirfd int, path string, flags uint) (int, error) {
	return unix.OpenTree(dirfd, path, flags)
}

func (Linux) MoveMount(fromDirfd int, fromPath string, toDirfd int, toPath string, flags int) error {
	return unix.MoveMount(fromDirfd, fromPath, toDirfd, toPath, flags)
}

func (Linux) MountSetattr(dirfd int, path string, flags uint, attr unix.MountAttr) error {
	return unix.MountSetattr(dirfd, path, flags, &attr)
}

func (Linux) Fsopen(fsName string, flags int) (int, error) { return unix.Fsopen(fsName, flags) }

func (Linux) FsconfigCreate(fd int) error { return unix.FsconfigCreate(fd) }

func (Linux) Fsmount(fd int, flags int, attrs int) (int, error) {
	return unix.Fsmount(fd, flags, attrs)
}

func (Linux) PivotRoot(newroot, putold string) error { return unix.PivotRoot(newroot, putold) }

func (Linux) Chroot(path string) error { return unix.Chroot(path) }

func (Linux) Chdir(path string) error { return unix.Chdir(path) }

func (Linux) Fchdir(fd int) error { return unix.Fchdir(fd) }

func (Linux) Mknodat(dirfd int, path string, mode uint32, dev int) error {
	return unix.Mknodat(dirfd, path, mode, dev)
}

func (Linux) Fchownat(dirfd int, path string, uid, gid, flags int) error {
	return unix.Fchownat(dirfd, path, uid, gid, flags)
}

func (Linux) OpenRoot() (*os.File, error) {
	return os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}
