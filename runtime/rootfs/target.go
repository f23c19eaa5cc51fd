package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	"golang.org/x/sys/unix"
)

// resolver opens mount targets inside the container's root and checks
// where they resolved, by descriptor: never outside the root, and into /proc
// or /sys only by the very path the spec gave. A symlink in the image may
// point anywhere in the root, but must not turn a mount of the pod author's
// into one over procfs or sysfs files, where the kernel's interfaces are
// (CVE-2025-52881).
type resolver struct {
	root *os.File
	path string // the root's real path, as /proc/self/fd shows it; read when needed
	// sys makes the mounts on the targets resolved here.
	sys Syscalls
}

// target is a resolved mount point, held open so that what was checked is
// what gets mounted on.
type target struct {
	*os.File
	dest    string // the path asked for, cleaned
	rel     string // where it resolved, from the root
	dir     bool
	existed bool
}

// procFd names the target for mount(2), which takes paths only.
func (t *target) procFd() string { return procFd(t.File) }

// open resolves dest inside the root, creating it (a directory, or an empty
// file when dir is false) if it does not exist.
func (r *resolver) open(dest string, dir bool) (*target, error) {
	t := &target{dest: filepath.Clean("/" + dest), dir: dir, existed: true}
	// Most targets are reached through no symlink at all: they are then
	// exactly where the spec says, which one openat2(2) proves.
	h, err := r.openLexical(t.dest)
	if errors.Is(err, os.ErrNotExist) {
		t.existed = false
		if h, err = r.create(t.dest, dir); err == nil {
			h.Close()
			h, err = r.openLexical(t.dest)
		}
	}
	if err == nil {
		t.File, t.rel = h, t.dest
		return t, nil
	}
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EAGAIN) {
		return nil, fmt.Errorf("resolve mount target %s: %w", t.dest, err)
	}
	// Through a symlink (or without openat2): resolve in the root and read
	// back where that led.
	t.File, err = pathrs.OpenatInRoot(r.root, t.dest)
	if errors.Is(err, os.ErrNotExist) {
		t.existed = false
		t.File, err = r.create(t.dest, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve mount target %s: %w", t.dest, err)
	}
	if err := r.check(t); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// openLexical opens path in the root if no component of it is a symlink.
func (r *resolver) openLexical(path string) (*os.File, error) {
	fd, err := unix.Openat2(int(r.root.Fd()), path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

func (r *resolver) check(t *target) error {
	if r.path == "" {
		path, err := procfs.ProcSelfFdReadlink(r.root)
		if err != nil {
			return fmt.Errorf("get real path of rootfs: %w", err)
		}
		r.path = path
	}
	real, err := procfs.ProcSelfFdReadlink(t.File)
	if err != nil {
		return fmt.Errorf("get real path of mount target %s: %w", t.dest, err)
	}
	if !within(real, r.path) {
		return fmt.Errorf("mount target %s resolves to %s, outside of rootfs %s", t.dest, real, r.path)
	}
	t.rel = "/" + strings.TrimPrefix(strings.TrimPrefix(real, r.path), "/")
	for _, fs := range []string{"/proc", "/sys"} {
		if within(t.rel, fs) && t.rel != t.dest {
			return fmt.Errorf("mount target %s resolves to %s, inside %s: a symlink may not redirect a mount there", t.dest, t.rel, fs)
		}
	}
	return nil
}

// reopen resolves the target again after something was mounted on it: the
// old handle points below the new mount. It must resolve to the same place.
func (r *resolver) reopen(t *target) (*target, error) {
	n, err := r.open(t.dest, t.dir)
	if err != nil {
		return nil, err
	}
	if n.rel != t.rel {
		n.Close()
		return nil, fmt.Errorf("mount target %s moved from %s to %s while it was mounted on", t.dest, t.rel, n.rel)
	}
	return n, nil
}

// with opens dest, calls fn with it and closes it.
func (r *resolver) with(dest string, dir bool, fn func(t *target) error) error {
	t, err := r.open(dest, dir)
	if err != nil {
		return err
	}
	defer t.Close()
	return fn(t)
}

func (r *resolver) create(dest string, dir bool) (*os.File, error) {
	if dir {
		return pathrs.MkdirAllHandle(r.root, dest, 0o755)
	}
	parent, err := pathrs.MkdirAllHandle(r.root, filepath.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return pathrs.OpenatInRoot(r.root, dest)
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// lxcfsProcFiles are the files under /proc a mount may cover: the ones
// lxcfs emulates, as runc allows.
var lxcfsProcFiles = []string{
	"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
	"/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
	"/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
}

// checkProcMount refuses a spec mount in /proc unless it is procfs itself
// on /proc (a fresh one, or a bind of a real one), or one of lxcfs's files.
// The runtime writes to procfs files and masks them; nothing of the pod
// author's or the image's may stand in for them.
func checkProcMount(t *target, m mountEntry) error {
	switch {
	case !within(t.rel, "/proc"):
		return nil
	case t.rel == "/proc":
		if m.bind {
			var st unix.Statfs_t
			if err := (bindFrom{path: m.Source, file: m.src}).statfs(&st); err != nil {
				return fmt.Errorf("statfs %s: %w", m.Source, err)
			}
			if st.Type == unix.PROC_SUPER_MAGIC {
				return nil
			}
		} else if m.Type == "proc" {
			return nil
		}
		return fmt.Errorf("%q cannot be mounted because it is not of type proc", t.rel)
	}
	for _, f := range lxcfsProcFiles {
		if t.rel == f {
			return nil
		}
	}
	return fmt.Errorf("%q cannot be mounted because it is inside /proc", t.rel)
}
