package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyUp mounts a tmpfs on t holding a copy of what the directory under it
// held (tmpcopyup), so an image's files stay visible but writes to them go
// to memory.
func copyUp(r *resolver, t *target, m mountEntry) error {
	// Taken before the mount: the directory stays reachable through it
	// once the tmpfs covers it.
	lower, err := openDir(int(t.Fd()), ".")
	if err != nil {
		return fmt.Errorf("tmpcopyup: open %s: %w", t.dest, err)
	}
	defer lower.Close()
	if err := r.sys.Mount(m.Source, t.procFd(), "tmpfs", m.opts.Flags, mountData(t, m)); err != nil {
		return err
	}
	top, err := r.reopen(t)
	if err != nil {
		return err
	}
	defer top.Close()
	upper, err := openDir(int(top.Fd()), ".")
	if err != nil {
		return fmt.Errorf("tmpcopyup: open the new tmpfs: %w", err)
	}
	defer upper.Close()
	if err := copyTree(lower, upper); err != nil {
		return fmt.Errorf("tmpcopyup: copy %s: %w", t.dest, err)
	}
	return nil
}

// copyTree copies the contents of the directory src into dst: files with
// their data, directories, symlinks and device nodes, each with its mode and
// owner. It follows no symlink: the tree is the image's, and dst is a fresh
// tmpfs no one else can reach yet.
func copyTree(src, dst *os.File) error {
	entries, err := src.ReadDir(-1)
	if err != nil {
		return err
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, e := range entries {
		name := e.Name()
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			err = copyDir(sfd, dfd, name)
		case unix.S_IFREG:
			err = copyFile(sfd, dfd, name)
		case unix.S_IFLNK:
			var link string
			if link, err = readlinkat(sfd, name); err == nil {
				err = unix.Symlinkat(link, dfd, name)
			}
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			err = unix.Mknodat(dfd, name, st.Mode, int(st.Rdev))
		default:
			continue // sockets mean nothing without their listener
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
		// After the chown, which clears set-id bits.
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if err := unix.Fchmodat(dfd, name, st.Mode&0o7777, 0); err != nil {
				return fmt.Errorf("chmod %s: %w", name, err)
			}
		}
	}
	return nil
}

func copyDir(sfd, dfd int, name string) error {
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return err
	}
	s, err := openDir(sfd, name)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := openDir(dfd, name)
	if err != nil {
		return err
	}
	defer d.Close()
	return copyTree(s, d)
}

func copyFile(sfd, dfd int, name string) error {
	s, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(s), name)
	defer src.Close()
	d, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(d), name)
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

func openDir(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > unix.PathMax {
			return "", errors.New("symlink target too long")
		}
	}
}
