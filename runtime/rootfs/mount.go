package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/spec"
)

// Config describes the root filesystem to build.
type Config struct {
	// Rootfs is the absolute path of the container's root on the host.
	Rootfs string
	Spec   *specs.Spec
	// CgroupPaths maps a v1 hierarchy name (or "" on cgroup v2) to the
	// container's cgroup directory on the host.
	CgroupPaths map[string]string
	// UserNS is set when the container has its own user namespace, where
	// mknod is not allowed and devices are bind-mounted from the host.
	UserNS bool
	// HostMountNS is set when the container shares the host's mount
	// namespace: the mounts are then the host's, so the host's propagation
	// is left alone and Unmount must remove them at delete.
	HostMountNS bool
	// MountSource asks the runtime on the host for the source of the
	// bind mount Spec.Mounts[index]: an idmapped tree to attach for an
	// idmapped mount, else an O_PATH descriptor of a source the init, an
	// unprivileged uid on the host in a user namespace, cannot reach.
	MountSource func(index int) (*os.File, error)
	// Sys makes the mount system calls; nil is Linux{}.
	Sys Syscalls
}

func (c *Config) sys() Syscalls {
	if c.Sys == nil {
		return Linux{}
	}
	return c.Sys
}

// Prepare mounts the container's filesystems under c.Rootfs. The caller must
// already be alone in a new mount namespace. Every mount target is resolved
// inside the root and mounted through an O_PATH handle, so a symlink planted
// in the image (or swapped in by a racing container) cannot redirect a mount
// onto the host, nor into /proc or /sys.
func Prepare(c *Config) error {
	sys := c.sys()
	prop, ok := ParsePropagation(c.Spec.Linux.RootfsPropagation)
	if !ok {
		return fmt.Errorf("invalid rootfsPropagation %q", c.Spec.Linux.RootfsPropagation)
	}
	if c.HostMountNS {
		// Not ours to change: keep the host's propagation.
	} else if err := sys.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of / : %w", err)
	}
	if prop&unix.MS_SHARED != 0 && !c.HostMountNS {
		// pivot_root refuses a new root whose parent mount is shared.
		if err := makeParentMountPrivate(sys, c.Rootfs); err != nil {
			return err
		}
	}
	if err := sys.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount rootfs %s onto itself: %w", c.Rootfs, err)
	}
	root, err := os.OpenFile(c.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	r := &resolver{root: root, sys: sys}

	devBound := false
	for i, m := range c.Spec.Mounts {
		e := mountEntry{Mount: m, index: i, opts: ParseMountOptions(m.Options)}
		e.bind = m.Type == "bind" || e.opts.Flags&unix.MS_BIND != 0
		e.idmapped = IDMapped(m, e.opts)
		if err := mountOne(r, c, e); err != nil {
			return fmt.Errorf("error mounting %q to rootfs at %q: %w", m.Source, m.Destination, err)
		}
		if filepath.Clean(m.Destination) == "/dev" && e.bind {
			devBound = true
		}
	}
	// A /dev bind-mounted from the host already has its devices.
	if !devBound {
		if err := createDevices(r, c); err != nil {
			return err
		}
	}
	return setupDevSymlinks(root, c)
}

// mountEntry is a spec mount with its options parsed.
type mountEntry struct {
	specs.Mount
	index    int // in the spec's mounts
	opts     MountOptions
	bind     bool
	idmapped bool
	// src is the bind source the runtime opened on the host, or nil: the
	// init binds m.Source itself.
	src *os.File
}

// mountOne makes the spec mount m. The spec's own values were checked by
// container.Validate (absolute destinations, idmapped binds only); where a
// destination resolves in the root is checked here, on the handle mounted
// on.
func mountOne(r *resolver, c *Config, m mountEntry) error {
	dir := true
	if m.bind {
		var err error
		if m.src, err = bindSource(c, m); err != nil {
			return err
		}
		if m.src != nil {
			defer m.src.Close()
		}
		var st unix.Stat_t
		if m.src != nil {
			err = unix.Fstat(int(m.src.Fd()), &st)
		} else {
			err = unix.Stat(m.Source, &st)
		}
		if err != nil {
			return fmt.Errorf("bind source: %w", &os.PathError{Op: "stat", Path: m.Source, Err: err})
		}
		dir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	t, err := r.open(m.Destination, dir)
	if err != nil {
		return err
	}
	defer t.Close()
	if t.rel == "/" {
		return errors.New("mount target is the container's root itself")
	}
	if err := checkProcMount(t, m); err != nil {
		return err
	}
	if m.Type == "proc" || m.Type == "sysfs" {
		// Only on the path the spec names, through no symlink.
		var st unix.Stat_t
		if err := unix.Fstat(int(t.Fd()), &st); err != nil {
			return err
		}
		if t.rel != t.dest || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("filesystem %q must be mounted on an ordinary directory", m.Type)
		}
	}

	switch {
	case m.Type == "cgroup" || m.Type == "cgroup2":
		return mountCgroup(r, c, m.Mount, m.opts)
	case m.bind:
		err = bindMount(r, t, bindFrom{path: m.Source, file: m.src, tree: m.idmapped}, m.opts)
	case m.opts.CopyUp && m.Type == "tmpfs":
		err = copyUp(r, t, m)
	default:
		err = r.sys.Mount(m.Source, t.procFd(), m.Type, m.opts.Flags, mountData(t, m))
		if m.Type == "sysfs" && errors.Is(err, unix.EPERM) && spec.HasNamespace(c.Spec, specs.UserNamespace) {
			// A user namespace may only mount sysfs for a network
			// namespace it owns (not the host's, nor one the shim made):
			// bind the /sys we see instead, with the same flags, as runc
			// does. Masked and read-only paths apply to it as usual.
			err = bindMount(r, t, bindFrom{path: "/sys"}, MountOptions{Flags: m.opts.Flags | unix.MS_REC})
		}
	}
	if err != nil {
		return err
	}
	if m.opts.Propagation == 0 && m.opts.RecSet == 0 && m.opts.RecClear == 0 {
		return nil
	}
	top, err := r.reopen(t)
	if err != nil {
		return err
	}
	defer top.Close()
	if m.opts.Propagation != 0 {
		if err := r.sys.Mount("", top.procFd(), "", m.opts.Propagation, ""); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	return setRecursiveAttrs(r.sys, top, m)
}

// mountData is the data a new mount gets: a tmpfs over an existing
// directory starts with its mode, as with runc, unless the options say
// otherwise.
func mountData(t *target, m mountEntry) string {
	if m.Type != "tmpfs" || !t.existed {
		return m.opts.Data
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(t.Fd()), &st); err != nil {
		return m.opts.Data
	}
	data := fmt.Sprintf("mode=%04o", st.Mode&07777)
	if m.opts.Data != "" {
		data += "," + m.opts.Data
	}
	return data
}

// setRecursiveAttrs applies the recursive options (rro, rnosuid, ...) to
// the mount and everything below it. Without mount_setattr(2) they cannot
// be honoured, and the mount must not go on without them.
func setRecursiveAttrs(sys Syscalls, t *target, m mountEntry) error {
	if m.opts.RecSet == 0 && m.opts.RecClear == 0 {
		return nil
	}
	attr := unix.MountAttr{Attr_set: m.opts.RecSet, Attr_clr: m.opts.RecClear}
	err := sys.MountSetattr(int(t.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr)
	if errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("mount options %s need mount_setattr(2), which this kernel does not have (Linux 5.12 or later)", recursiveNames(m.Options))
	}
	if err != nil {
		return fmt.Errorf("set recursive mount options %s: %w", recursiveNames(m.Options), err)
	}
	return nil
}

// bindSource asks the runtime for the source of an idmapped bind mount,
// which only it can make, and of a bind mount whose source the init cannot
// reach: in a user namespace it is an unprivileged uid on the host, and a
// pod's volumes are in directories only the host's root may enter.
func bindSource(c *Config, m mountEntry) (*os.File, error) {
	if !m.idmapped {
		if !c.UserNS {
			return nil, nil
		}
		if _, err := os.Stat(m.Source); err == nil {
			return nil, nil
		}
	}
	if c.MountSource == nil {
		return nil, errors.New("the runtime cannot open mount sources here")
	}
	return c.MountSource(m.index)
}

// bindFrom is a bind mount's source: a path the init resolves, or a
// descriptor the runtime opened, which is a detached mount tree to attach
// for an idmapped mount.
type bindFrom struct {
	path string
	file *os.File
	tree bool
}

func (b bindFrom) statfs(st *unix.Statfs_t) error {
	if b.file != nil {
		return unix.Fstatfs(int(b.file.Fd()), st)
	}
	return unix.Statfs(b.path, st)
}

// bindMount binds source onto t and then applies the flags a bind mount
// ignores on creation (ro, nosuid, ...) with a remount, as mount(8) does;
// an option that clears a flag (rw, suid, ...) asks for the remount too.
func bindMount(r *resolver, t *target, source bindFrom, opts MountOptions) error {
	var err error
	switch {
	case source.tree:
		err = attach(r.sys, int(source.file.Fd()), t.File)
	case source.file != nil:
		err = r.sys.Mount(procFd(source.file), t.procFd(), "", unix.MS_BIND|opts.Flags&unix.MS_REC, "")
	default:
		err = r.sys.Mount(source.path, t.procFd(), "", unix.MS_BIND|opts.Flags&unix.MS_REC, "")
	}
	if err != nil {
		return err
	}
	extra := opts.Flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	if extra == 0 && opts.Cleared == 0 {
		return nil
	}
	top, err := r.reopen(t)
	if err != nil {
		return err
	}
	defer top.Close()
	flags := unix.MS_BIND | unix.MS_REMOUNT | extra
	err = r.sys.Mount("", top.procFd(), "", flags, "")
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	// The source's flags are locked (a mount from a more privileged mount
	// namespace, seen from a user namespace): keep them, unless the
	// options ask to clear one, which cannot be done.
	var st unix.Statfs_t
	if serr := source.statfs(&st); serr != nil {
		return err
	}
	locked := statfsFlags(int64(st.Flags))
	if clear := opts.Cleared & locked; clear != 0 {
		return fmt.Errorf("cannot clear locked mount flags %#x of %s: %w", clear, source.path, err)
	}
	if err := r.sys.Mount("", top.procFd(), "", flags|locked, ""); err != nil {
		return fmt.Errorf("remount with the locked flags %#x of %s: %w", locked, source.path, err)
	}
	return nil
}

// bindPath binds source onto dest, for the runtime's own mounts.
func bindPath(r *resolver, source, dest string, opts MountOptions) error {
	fi, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	return r.with(dest, fi.IsDir(), func(t *target) error {
		return bindMount(r, t, bindFrom{path: source}, opts)
	})
}

// mountCgroup gives the container a view of its own cgroups only: on v1 a
// tmpfs holding a bind mount of the container's directory per hierarchy, on
// v2 a fresh cgroup2 mount when it has a cgroup namespace, else a bind mount.
func mountCgroup(r *resolver, c *Config, m specs.Mount, opts MountOptions) error {
	ro := opts.Flags & unix.MS_RDONLY
	if host, ok := c.CgroupPaths[""]; ok {
		if spec.HasNamespace(c.Spec, specs.CgroupNamespace) {
			err := r.with(m.Destination, true, func(t *target) error {
				return r.sys.Mount("cgroup2", t.procFd(), "cgroup2", opts.Flags, "")
			})
			// In a user namespace the kernel may refuse a cgroup2 mount
			// (EPERM), or /sys bound from the host already has one there
			// (EBUSY): bind the container's own cgroup instead, which is
			// what its cgroup namespace shows, as runc falls back.
			if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) {
				return err
			}
		}
		return bindPath(r, host, m.Destination, MountOptions{Flags: unix.MS_REC | opts.Flags})
	}
	base := opts.Flags &^ unix.MS_RDONLY
	if err := r.with(m.Destination, true, func(t *target) error {
		return r.sys.Mount("tmpfs", t.procFd(), "tmpfs", base, "mode=755")
	}); err != nil {
		return err
	}
	names := make([]string, 0, len(c.CgroupPaths))
	for name := range c.CgroupPaths {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		dest := filepath.Join(m.Destination, name)
		if err := bindPath(r, c.CgroupPaths[name], dest, MountOptions{Flags: base | ro}); err != nil {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	if ro == 0 {
		return nil
	}
	return r.with(m.Destination, true, func(t *target) error {
		return r.sys.Mount("", t.procFd(), "", unix.MS_REMOUNT|base|ro, "mode=755")
	})
}

func procFd(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) // procfs-literal: mount(2)'s magic link; the host's /proc before pivot_root, a checked one after (fdmount.go)
}

// lockedFlags pairs each statfs(2) flag with the mount(2) flag the kernel
// locks on a mount seen from a less privileged user namespace.
var lockedFlags = [...]struct {
	st int64
	ms uintptr
}{
	{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
	{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME},
	{unix.ST_RELATIME, unix.MS_RELATIME},
}

// statfsFlags maps statfs(2) flags to the mount(2) flags the kernel locks
// on a mount seen from a less privileged user namespace, which a bind
// remount must repeat.
func statfsFlags(st int64) uintptr {
	var flags uintptr
	for _, f := range lockedFlags {
		if st&f.st != 0 {
			flags |= f.ms
		}
	}
	return flags
}

func makeParentMountPrivate(sys Syscalls, path string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(path))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	longest := "/"
	for _, m := range mounts {
		if len(m.Mountpoint) > len(longest) {
			longest = m.Mountpoint
		}
	}
	if err := sys.Mount("", longest, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", longest, err)
	}
	return nil
}

// Unmount removes every mount at or below rootfs, deepest first. Containers
// sharing the host's mount namespace leave their mounts on the host, and
// delete (or a failed create) must take them away.
func Unmount(rootfs string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(rootfs))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
		}
	}
	return nil
}
