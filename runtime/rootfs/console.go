package rootfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MountConsole bind-mounts the container's pty on /dev/console, after
// pivot_root. /dev may be a directory the image or a pod author controls:
// /dev and /dev/console are opened without following symlinks, created if
// missing, and checked by descriptor before anything is mounted
// (CVE-2025-52565).
func MountConsole(sys Syscalls, pty *os.File) error {
	dev, err := openNoFollow(unix.AT_FDCWD, "/dev", unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer dev.Close()
	target, err := openNoFollow(int(dev.Fd()), "console", 0)
	if errors.Is(err, unix.ENOENT) {
		fd, cerr := unix.Openat(int(dev.Fd()), "console", unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
		if cerr != nil {
			return fmt.Errorf("create /dev/console: %w", cerr)
		}
		unix.Close(fd)
		target, err = openNoFollow(int(dev.Fd()), "console", 0)
	}
	if err != nil {
		return fmt.Errorf("open /dev/console: %w", err)
	}
	defer target.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &st); err != nil {
		return fmt.Errorf("stat /dev/console: %w", err)
	}
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFREG && kind != unix.S_IFCHR {
		return fmt.Errorf("/dev/console is not a file or a character device (mode %#o): refusing to mount the pty on it", st.Mode)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(target.Fd()), &fs); err != nil {
		return fmt.Errorf("statfs /dev/console: %w", err)
	}
	if fs.Type == unix.PROC_SUPER_MAGIC || fs.Type == unix.SYSFS_MAGIC {
		return fmt.Errorf("/dev/console is on procfs or sysfs (type %#x): refusing to mount the pty on it", fs.Type)
	}
	if err := bindFd(sys, pty, target); err != nil {
		return fmt.Errorf("mount the pty on /dev/console: %w", err)
	}
	return nil
}

// openNoFollow opens name in dirfd as an O_PATH handle, without following
// a symlink in its last component: a symlink is returned as itself, and
// O_DIRECTORY refuses it.
func openNoFollow(dirfd int, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}
