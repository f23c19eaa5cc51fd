package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func charDevice(path string, major, minor int64) specs.LinuxDevice {
	mode := os.FileMode(0o666)
	return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor, FileMode: &mode}
}

// DefaultDevices are the nodes every container gets, as with runc.
var DefaultDevices = []specs.LinuxDevice{
	charDevice("/dev/null", 1, 3),
	charDevice("/dev/zero", 1, 5),
	charDevice("/dev/full", 1, 7),
	charDevice("/dev/random", 1, 8),
	charDevice("/dev/urandom", 1, 9),
	charDevice("/dev/tty", 5, 0),
}

func createDevices(r *resolver, c *Config) error {
	devs := append([]specs.LinuxDevice{}, DefaultDevices...)
	devs = append(devs, c.Spec.Linux.Devices...)
	for _, d := range devs {
		if err := createDevice(r, d, c.UserNS); err != nil {
			return fmt.Errorf("create device %s: %w", d.Path, err)
		}
	}
	return nil
}

// createDevice makes the node d.Path, an absolute path (container.Validate).
func createDevice(r *resolver, d specs.LinuxDevice, userNS bool) error {
	if userNS {
		// mknod is not allowed in a user namespace: bind the host's node.
		return bindPath(r, d.Path, d.Path, MountOptions{})
	}
	var kind uint32
	switch d.Type {
	case "c", "u":
		kind = unix.S_IFCHR
	case "b":
		kind = unix.S_IFBLK
	case "p":
		kind = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	parent, err := pathrs.MkdirAllHandle(r.root, filepath.Dir(d.Path), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	dirfd, name := int(parent.Fd()), filepath.Base(d.Path)
	dev := int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	err = r.sys.Mknodat(dirfd, name, kind|perm, dev)
	if errors.Is(err, unix.EEXIST) {
		// The image may ship a placeholder; ours must be the real node.
		if err = unix.Unlinkat(dirfd, name, 0); err == nil {
			err = r.sys.Mknodat(dirfd, name, kind|perm, dev)
		}
	}
	if err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return r.sys.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// setupDevSymlinks adds the /dev links programs expect and points /dev/ptmx
// at the container's own devpts instance.
func setupDevSymlinks(root *os.File, c *Config) error {
	dev, err := pathrs.MkdirAllHandle(root, "/dev", 0o755)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer dev.Close()
	links := [][2]string{
		{"/proc/self/fd", "fd"},       // procfs-literal: a symlink's target, never opened here
		{"/proc/self/fd/0", "stdin"},  // procfs-literal: a symlink's target, never opened here
		{"/proc/self/fd/1", "stdout"}, // procfs-literal: a symlink's target, never opened here
		{"/proc/self/fd/2", "stderr"}, // procfs-literal: a symlink's target, never opened here
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, m := range c.Spec.Mounts {
		if filepath.Clean(m.Destination) == "/dev/pts" && m.Type == "devpts" {
			if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove /dev/ptmx: %w", err)
			}
			links = append(links, [2]string{"pts/ptmx", "ptmx"})
		}
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s -> %s: %w", l[1], l[0], err)
		}
	}
	return nil
}
