package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
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
	// Console creates /dev/console for a pty to be mounted on later.
	Console bool
	// HostMountNS is set when the container shares the host's mount
	// namespace: the mounts are then the host's, so the host's propagation
	// is left alone and Unmount must remove them at delete.
	HostMountNS bool
}

// Prepare mounts the container's filesystems under c.Rootfs. The caller must
// already be alone in a new mount namespace. Every mount target is resolved
// inside the root and mounted through an O_PATH handle, so a symlink planted
// in the image (or swapped in by a racing container) cannot redirect a mount
// onto the host.
func Prepare(c *Config) error {
	prop, ok := ParsePropagation(c.Spec.Linux.RootfsPropagation)
	if !ok {
		return fmt.Errorf("invalid rootfsPropagation %q", c.Spec.Linux.RootfsPropagation)
	}
	if c.HostMountNS {
		// Not ours to change: keep the host's propagation.
	} else if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of / : %w", err)
	}
	if prop&unix.MS_SHARED != 0 && !c.HostMountNS {
		// pivot_root refuses a new root whose parent mount is shared.
		if err := makeParentMountPrivate(c.Rootfs); err != nil {
			return err
		}
	}
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount rootfs %s onto itself: %w", c.Rootfs, err)
	}
	root, err := os.OpenFile(c.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()

	devBound := false
	for _, m := range c.Spec.Mounts {
		if err := mountOne(root, c, m); err != nil {
			return fmt.Errorf("error mounting %q to rootfs at %q: %w", m.Source, m.Destination, err)
		}
		if filepath.Clean(m.Destination) == "/dev" && isBind(m) {
			devBound = true
		}
	}
	// A /dev bind-mounted from the host already has its devices.
	if !devBound {
		if err := createDevices(root, c); err != nil {
			return err
		}
	}
	return setupDevSymlinks(root, c)
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || ParseMountOptions(m.Options).Flags&unix.MS_BIND != 0
}

func mountOne(root *os.File, c *Config, m specs.Mount) error {
	if !filepath.IsAbs(m.Destination) {
		return fmt.Errorf("mount destination %q is not absolute", m.Destination)
	}
	opts := ParseMountOptions(m.Options)
	switch {
	case m.Type == "cgroup" || m.Type == "cgroup2":
		return mountCgroup(root, c, m, opts)
	case isBind(m):
		if err := bindMount(root, m.Source, m.Destination, opts); err != nil {
			return err
		}
	default:
		err := withTarget(root, m.Destination, true, func(target string) error {
			return unix.Mount(m.Source, target, m.Type, opts.Flags, opts.Data)
		})
		if m.Type == "sysfs" && errors.Is(err, unix.EPERM) && spec.HasNamespace(c.Spec, specs.UserNamespace) {
			// A user namespace may only mount sysfs for a network
			// namespace it owns (not the host's, nor one the shim made):
			// bind the /sys we see instead, with the same flags, as runc
			// does. Masked and read-only paths apply to it as usual.
			err = bindMount(root, "/sys", m.Destination, MountOptions{Flags: opts.Flags | unix.MS_REC})
		}
		if err != nil {
			return err
		}
	}
	if opts.Propagation != 0 {
		return withTarget(root, m.Destination, true, func(target string) error {
			return unix.Mount("", target, "", opts.Propagation, "")
		})
	}
	return nil
}

// bindMount binds source onto dest and then applies the flags a bind mount
// ignores on creation (ro, nosuid, ...) with a remount, as mount(8) does.
func bindMount(root *os.File, source, dest string, opts MountOptions) error {
	fi, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	if err := withTarget(root, dest, fi.IsDir(), func(target string) error {
		return unix.Mount(source, target, "", unix.MS_BIND|opts.Flags&unix.MS_REC, "")
	}); err != nil {
		return err
	}
	extra := opts.Flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	if extra == 0 {
		return nil
	}
	// Re-open: the old handle points below the new mount.
	return withTarget(root, dest, fi.IsDir(), func(target string) error {
		return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|extra, "")
	})
}

// mountCgroup gives the container a view of its own cgroups only: on v1 a
// tmpfs holding a bind mount of the container's directory per hierarchy, on
// v2 a fresh cgroup2 mount when it has a cgroup namespace, else a bind mount.
func mountCgroup(root *os.File, c *Config, m specs.Mount, opts MountOptions) error {
	ro := opts.Flags & unix.MS_RDONLY
	if host, ok := c.CgroupPaths[""]; ok {
		if spec.HasNamespace(c.Spec, specs.CgroupNamespace) {
			return withTarget(root, m.Destination, true, func(target string) error {
				return unix.Mount("cgroup2", target, "cgroup2", opts.Flags, "")
			})
		}
		return bindMount(root, host, m.Destination, MountOptions{Flags: unix.MS_REC | opts.Flags})
	}
	base := opts.Flags &^ unix.MS_RDONLY
	if err := withTarget(root, m.Destination, true, func(target string) error {
		return unix.Mount("tmpfs", target, "tmpfs", base, "mode=755")
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
		if err := bindMount(root, c.CgroupPaths[name], dest, MountOptions{Flags: base | ro}); err != nil {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	if ro == 0 {
		return nil
	}
	return withTarget(root, m.Destination, true, func(target string) error {
		return unix.Mount("", target, "", unix.MS_REMOUNT|base|ro, "mode=755")
	})
}

// withTarget resolves dest inside root, creating it (a directory, or an empty
// file when dir is false) if missing, and calls fn with a /proc/self/fd path
// that names exactly the resolved object.
func withTarget(root *os.File, dest string, dir bool, fn func(target string) error) error {
	h, err := openTarget(root, dest, dir)
	if err != nil {
		return fmt.Errorf("resolve mount target %s: %w", dest, err)
	}
	defer h.Close()
	return fn(procFd(h))
}

func openTarget(root *os.File, dest string, dir bool) (*os.File, error) {
	if h, err := pathrs.OpenatInRoot(root, dest); err == nil {
		return h, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if dir {
		return pathrs.MkdirAllHandle(root, dest, 0o755)
	}
	parent, err := pathrs.MkdirAllHandle(root, filepath.Dir(dest), 0o755)
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
	return pathrs.OpenatInRoot(root, dest)
}

func procFd(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

func makeParentMountPrivate(path string) error {
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
	if err := unix.Mount("", longest, "", unix.MS_PRIVATE, ""); err != nil {
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
