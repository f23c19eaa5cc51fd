// Package exeseal gives the runtime the executable it starts every init and
// exec'd process from: its own binary, in a form that nothing in a container
// can write (CVE-2019-5736: a container that opens /proc/<init>/exe, or one
// of the init's map_files, must never reach the host's binary) and that is
// execute-only, mode 0111, so that the process exec'd from it is
// non-dumpable and keeps its mm in the host's user namespace from its first
// instruction, long before the init's own prctl(PR_SET_DUMPABLE, 0) (the
// CVE-2016-9962 class). The mode alone does not do that for root, whose
// DAC override lets the kernel read the file: the spawning child also
// drops those capabilities from its effective set just before the exec
// (container's dropReadCaps).
//
// The binary is sealed once per build, not copied per process: a state root
// holds one copy of each build, @exe/bin/hostnet-runc.<Go build ID>, owned by
// root, mode 0111, in directories only root may enter, made with O_EXCL under
// a temporary name and renamed into place. Every spawn checks the copy by
// descriptor (root's, 0111, a regular file with one link, this binary's size
// and Go build ID) and opens it through a private overlayfs whose only layers
// are that directory and an empty one, created with fsopen(2) and fsmount(2),
// read-only and never attached anywhere in the host's tree: as in runc's
// libcontainer/exeseal, an overlay without an upper layer has a read-only
// superblock, which no mount_setattr(2) can make writable (a read-only bind
// mount of the copy could be, by a holder of CAP_SYS_ADMIN and of the mount's
// root, which /proc/<init>/exe is), and overlayfs opens and maps the lower
// file through private read-only mounts, so map_files lead nowhere writable
// either. The overlay keeps the copy's 0111, which an overlay over the
// installed 0755 binary, runc's way, would lose.
//
// A copy that fails any check is replaced by a new one. Where this cannot be
// done (not root, no overlayfs or new mount API, a read-only or odd state
// root, a binary without a Go build ID), the binary is copied into a sealed
// execute-only memfd per process instead, as runc's CloneBinary does.
package exeseal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// DirName is the directory under the state root that holds the copies.
	// '@' is outside the container id alphabet ([\w+.-]), so no container's
	// state directory can ever be it.
	DirName = "@exe"
	// BinDir, under DirName, holds the copies, one per build; emptyDir is
	// the overlay's second layer (overlayfs needs two without an upper one).
	BinDir   = "bin"
	emptyDir = "empty"
	// CopyPrefix starts the name of each copy; the build ID follows.
	CopyPrefix = "hostnet-runc."
	tmpPrefix  = ".tmp."
	// ExeMode is the copy's mode: executable, readable by nobody.
	ExeMode = 0o111
	// staleTemp is the age after which a temporary copy is a crashed
	// runtime's leftover, not another one's copy in progress.
	staleTemp = time.Minute
)

// errReplaced is a copy that is no longer the one checked.
var errReplaced = errors.New("not the copy checked")

// overlayFS is the filesystem the copy is seen through (a test replaces it
// to play a kernel without overlayfs).
var overlayFS = "overlay"

// Executable returns a descriptor of this binary to exec the init from:
// the sealed copy of this build under root, made on first use, seen through
// a detached read-only overlay; or, where that cannot be had, a sealed memfd
// copy, with debugf (which may be nil) saying why.
func Executable(root string, debugf func(format string, args ...any)) (*os.File, error) {
	if debugf == nil {
		debugf = func(string, ...any) {}
	}
	self, err := openSelf()
	if err != nil {
		return nil, err
	}
	defer self.file.Close()
	switch {
	case os.Geteuid() != 0:
		debugf("exeseal: not root, copying the binary into a memfd")
	case self.buildID == "":
		debugf("exeseal: the binary has no Go build ID, copying it into a memfd")
	default:
		exe, err := sealedOnce(root, self, debugf)
		if err == nil {
			return exe, nil
		}
		debugf("exeseal: %v; copying the binary into a memfd", err)
	}
	return memfdCopy(self)
}

// self is this binary: the descriptor it was opened through, its size and
// Go build ID.
type self struct {
	file    *os.File
	size    int64
	buildID string
}

func openSelf() (*self, error) {
	f, err := os.Open("/proc/self/exe") // procfs-literal: the runtime's own binary, before any namespace is entered
	if err != nil {
		return nil, fmt.Errorf("open own executable: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat own executable: %w", err)
	}
	id, err := readBuildID(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read own executable: %w", err)
	}
	return &self{file: f, size: st.Size, buildID: id}, nil
}

// sealedOnce opens this build's copy under root through a fresh detached
// overlay, making the copy first if it is missing or fails a check.
func sealedOnce(root string, s *self, debugf func(string, ...any)) (*os.File, error) {
	bin, empty, err := openDirs(root)
	if err != nil {
		return nil, err
	}
	defer bin.Close()
	defer empty.Close()
	name := CopyPrefix + strings.ReplaceAll(s.buildID, "/", ".")
	for attempt := 1; ; attempt++ {
		st, err := checkCopy(bin, name, s)
		if err != nil {
			missing := errors.Is(err, unix.ENOENT)
			if !missing {
				debugf("exeseal: rejecting %s: %v", filepath.Join(root, DirName, BinDir, name), err)
			}
			if err := makeCopy(bin, name, s, !missing); err != nil {
				return nil, err
			}
			if st, err = checkCopy(bin, name, s); err != nil {
				return nil, fmt.Errorf("the copy just made: %w", err)
			}
			removeStale(bin, name)
		}
		exe, err := openThroughOverlay(bin, empty, name, st)
		// Another runtime that found a bad copy too may have replaced
		// the one checked meanwhile with its own: check that one.
		if errors.Is(err, errReplaced) && attempt < 3 {
			continue
		}
		return exe, err
	}
}

// openDirs opens root's @exe/bin and @exe/empty, creating what is missing,
// and checks that each is root's own and closed to everyone else.
func openDirs(root string) (bin, empty *os.File, err error) {
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open state root: %w", &os.PathError{Op: "open", Path: root, Err: err})
	}
	defer unix.Close(rootFd)
	top, err := ensureDir(rootFd, DirName, filepath.Join(root, DirName))
	if err != nil {
		return nil, nil, err
	}
	defer top.Close()
	if bin, err = ensureDir(int(top.Fd()), BinDir, filepath.Join(top.Name(), BinDir)); err != nil {
		return nil, nil, err
	}
	if empty, err = ensureDir(int(top.Fd()), emptyDir, filepath.Join(top.Name(), emptyDir)); err != nil {
		bin.Close()
		return nil, nil, err
	}
	return bin, empty, nil
}

// ensureDir opens the directory name under parent, making it (0700) if it
// does not exist, and checks it by descriptor: a directory (never a
// symlink), owned by root, mode 0700.
func ensureDir(parent int, name, path string) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, name, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		made := unix.Mkdirat(parent, name, 0o700)
		if made != nil && !errors.Is(made, unix.EEXIST) {
			return nil, &os.PathError{Op: "mkdir", Path: path, Err: made}
		}
		if fd, err = unix.Openat(parent, name, flags, 0); err == nil && made == nil {
			// Our own: the umask may have taken bits off.
			err = unix.Fchmod(fd, 0o700)
		}
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		dir.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o7777 != 0o700 {
		dir.Close()
		return nil, fmt.Errorf("%s is not a directory of root's with mode 0700 (uid %d, mode %#o)", path, st.Uid, st.Mode)
	}
	return dir, nil
}

// checkCopy opens the copy name in bin and checks it by descriptor: a
// regular file with one link, root's, mode 0111, of this binary's size, and
// carrying this binary's build ID. It returns the copy's stat.
func checkCopy(bin *os.File, name string, s *self) (*unix.Stat_t, error) {
	// O_NOFOLLOW: a symlink fails with ELOOP; O_NONBLOCK: a fifo does not
	// block the open.
	fd, err := unix.Openat(int(bin.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	st := new(unix.Stat_t)
	if err := unix.Fstat(fd, st); err != nil {
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("not a regular file (mode %#o)", st.Mode)
	case st.Uid != 0:
		return nil, fmt.Errorf("owned by uid %d, not root", st.Uid)
	case st.Mode&0o7777 != ExeMode:
		return nil, fmt.Errorf("mode %#o, not %#o", st.Mode&0o7777, ExeMode)
	case st.Nlink != 1:
		return nil, fmt.Errorf("%d links, not 1", st.Nlink)
	case st.Size != s.size:
		return nil, fmt.Errorf("%d bytes, not the binary's %d", st.Size, s.size)
	}
	id, err := readBuildID(f)
	if err != nil {
		return nil, err
	}
	if id != s.buildID {
		return nil, fmt.Errorf("build ID %q, not the binary's %q", id, s.buildID)
	}
	return st, nil
}

// makeCopy copies the binary under a temporary name made with O_EXCL,
// seals its mode and renames it to name: a copy is whole whenever it can
// be found. A missing copy is renamed into place only if no concurrent
// runtime's came first (RENAME_NOREPLACE), so that one stays; a bad one
// (replace) is renamed over.
func makeCopy(bin *os.File, name string, s *self, replace bool) error {
	dirfd := int(bin.Fd())
	tmp := tmpPrefix + strconv.Itoa(os.Getpid()) + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o100)
	if err != nil {
		return fmt.Errorf("create copy of the binary in %s: %w", bin.Name(), err)
	}
	dst := os.NewFile(uintptr(fd), tmp)
	err = func() error {
		defer dst.Close()
		if err := copyFile(dst, s.file, s.size); err != nil {
			return err
		}
		if err := dst.Chmod(ExeMode); err != nil {
			return err
		}
		return dst.Sync()
	}()
	if err == nil && !replace {
		err = unix.Renameat2(dirfd, tmp, dirfd, name, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			// Another runtime's copy, checked by the caller next.
			_ = unix.Unlinkat(dirfd, tmp, 0)
			return nil
		}
		// A filesystem without RENAME_NOREPLACE: the plain rename
		// below replaces a concurrent copy, which the caller notices.
		replace = errors.Is(err, unix.EINVAL)
	}
	if err == nil && replace {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("copy the binary to %s: %w", filepath.Join(bin.Name(), name), err)
	}
	return nil
}

// removeStale removes, once a build has made its copy, the copies of other
// builds (an upgraded runtime's predecessors; a build still in use makes its
// copy again, at the cost of one copy, what every spawn cost before) and
// temporary copies a crashed runtime left.
func removeStale(bin *os.File, keep string) {
	names, err := readDirNames(bin)
	if err != nil {
		return
	}
	for _, n := range names {
		switch {
		case n == keep:
		case strings.HasPrefix(n, CopyPrefix):
			_ = unix.Unlinkat(int(bin.Fd()), n, 0)
		case strings.HasPrefix(n, tmpPrefix):
			var st unix.Stat_t
			if unix.Fstatat(int(bin.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
				time.Since(time.Unix(st.Mtim.Unix())) > staleTemp {
				_ = unix.Unlinkat(int(bin.Fd()), n, 0)
			}
		}
	}
}

// readDirNames lists dir through a descriptor of its own, leaving dir's
// offset alone.
func readDirNames(dir *os.File) ([]string, error) {
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), dir.Name())
	defer d.Close()
	return d.Readdirnames(-1)
}

// openThroughOverlay opens the copy name through a new overlay of bin over
// empty, detached and read-only, and checks that it is the copy checked
// before (st): same inode (overlayfs keeps the real inode numbers when all
// layers are on one filesystem, as these two are), mode, owner and size.
func openThroughOverlay(bin, empty *os.File, name string, st *unix.Stat_t) (*os.File, error) {
	ctx, err := unix.Fsopen(overlayFS, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen %s: %w", overlayFS, err)
	}
	defer unix.Close(ctx)
	// overlayfs takes its layers by path; these name exactly the
	// directories checked by descriptor. bin is on top, so nothing in empty
	// could hide the copy.
	lower := fdPath(bin) + ":" + fdPath(empty)
	if err := unix.FsconfigSetString(ctx, "lowerdir", lower); err != nil {
		return nil, fmt.Errorf("fsconfig overlay lowerdir=%s: %w", lower, err)
	}
	if err := unix.FsconfigCreate(ctx); err != nil {
		return nil, fmt.Errorf("create overlay of %s: %w", bin.Name(), err)
	}
	mnt, err := unix.Fsmount(ctx, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return nil, fmt.Errorf("fsmount overlay of %s: %w", bin.Name(), err)
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s through the overlay: %w", name, err)
	}
	exe := os.NewFile(uintptr(fd), "overlay:"+name)
	var ost unix.Stat_t
	if err := unix.Fstat(fd, &ost); err != nil {
		exe.Close()
		return nil, fmt.Errorf("stat %s through the overlay: %w", name, err)
	}
	if ost.Ino != st.Ino || ost.Mode != st.Mode || ost.Uid != 0 || ost.Size != st.Size {
		exe.Close()
		return nil, fmt.Errorf("%s through the overlay (inode %d, mode %#o, uid %d, %d bytes): %w", name, ost.Ino, ost.Mode, ost.Uid, ost.Size, errReplaced)
	}
	return exe, nil
}

func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) // procfs-literal: a layer path for overlayfs, naming a directory opened and checked by descriptor, resolved in the runtime's own mount namespace before any namespace is entered
}

// memfdCopy copies the binary into a sealed, execute-only memfd.
func memfdCopy(s *self) (*os.File, error) {
	fd, err := unix.MemfdCreate("hostnet-runc", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "memfd:hostnet-runc")
	if err := copyFile(mem, s.file, s.size); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copy own executable to memfd: %w", err)
	}
	if err := mem.Chmod(ExeMode); err != nil {
		mem.Close()
		return nil, fmt.Errorf("chmod memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		mem.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return mem, nil
}

// copyFile copies size bytes of src, from its start, into dst with
// sendfile(2): a few system calls instead of hundreds of reads and writes;
// copy_file_range, which io.Copy tries first, refuses to cross into a
// memfd.
func copyFile(dst, src *os.File, size int64) error {
	var off int64
	for off < size {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, int(size-off))
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}
