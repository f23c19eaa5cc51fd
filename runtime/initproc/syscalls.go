package initproc

import (
	"math"
	"os"
	"strconv"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/rootfs"
	"github.com/hostnet-dev/hostnet/runtime/seccomp"
)

// Syscalls are the system calls the init makes whose order and arguments
// are its decisions: the mounts (rootfs.Syscalls), and what it changes of
// its own process before the user's program replaces it — namespaces,
// hostname, limits, ids and capabilities, no_new_privs, seccomp, working
// directory. linux makes them; tests record them with a double
// (runtime/internal/systest), as youki's Syscall trait does.
//
// Checks of the container's files stay direct (lookPath's stat is the one
// exception, as it must see the container's root). A procfs write keeps
// going through a procfs handle of the runtime's own: WriteProcFile names
// the file, linux opens it by descriptor (writeProcFile).
type Syscalls interface {
	rootfs.Syscalls
	Umask(mask int) int
	Unshare(flags int) error
	Sethostname(name string) error
	Setdomainname(name string) error
	JoinSessionKeyring(name string) error
	// BringUpLoopback sets lo up in the network namespace the init is in.
	BringUpLoopback() error
	// WriteProcFile writes value to the procfs file at path, a
	// /proc/sys/, /proc/self/ or /proc/thread-self/ path.
	WriteProcFile(path, value string) error
	// CloseExecFrom marks every descriptor from first on close-on-exec.
	CloseExecFrom(first int) error
	Prlimit(resource int, limit unix.Rlimit) error
	Personality(persona uintptr) error
	SchedSetAttr(attr unix.SchedAttr) error
	IoprioSet(prio int) error
	Setgroups(gids []int) error
	Setresgid(gid int) error // real, effective and saved
	Setresuid(uid int) error // real, effective and saved
	SetKeepCaps(keep bool) error
	SetNoNewPrivs() error
	// SetBounding drops every capability not in keep from the bounding set.
	SetBounding(keep []capability.Cap) error
	// SetCapabilities sets the effective, permitted and inheritable sets.
	SetCapabilities(effective, permitted, inheritable []capability.Cap) error
	ResetAmbient() error
	RaiseAmbient(c capability.Cap) error
	// LoadSeccomp installs f; see seccomp.Filter.Load.
	LoadSeccomp(f *seccomp.Filter) (listener int, err error)
	Getwd() (string, error)
	Stat(path string) (os.FileInfo, error)
}

// linux makes the system calls of Syscalls.
type linux struct{ rootfs.Linux }

var _ Syscalls = linux{}

func (linux) Umask(mask int) int                     { return unix.Umask(mask) }
func (linux) Unshare(flags int) error                { return unix.Unshare(flags) }
func (linux) Sethostname(name string) error          { return unix.Sethostname([]byte(name)) }
func (linux) Setdomainname(name string) error        { return unix.Setdomainname([]byte(name)) }
func (linux) WriteProcFile(path, value string) error { return writeProcFile(path, value) }
func (linux) Getwd() (string, error)                 { return os.Getwd() }
func (linux) Stat(path string) (os.FileInfo, error)  { return os.Stat(path) }

func (linux) JoinSessionKeyring(name string) error {
	_, err := unix.KeyctlJoinSessionKeyring(name)
	return err
}

// BringUpLoopback uses an ioctl, which keeps netlink libraries out of the
// runtime.
func (linux) BringUpLoopback() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// CloseExecFrom uses close_range(2), which needs no /proc; before Linux
// 5.11 the descriptors are listed through the runtime's own procfs.
func (linux) CloseExecFrom(first int) error {
	if unix.CloseRange(uint(first), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return nil
	}
	dir, err := ownFdDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	fds, err := pathrs.Reopen(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer fds.Close()
	names, err := fds.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

func (linux) Prlimit(resource int, limit unix.Rlimit) error {
	return unix.Prlimit(0, resource, &limit, nil)
}

func (linux) Personality(persona uintptr) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, persona, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

func (linux) SchedSetAttr(attr unix.SchedAttr) error { return unix.SchedSetAttr(0, &attr, 0) }

func (linux) IoprioSet(prio int) error {
	const ioprioWhoProcess = 1
	if _, _, errno := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(prio)); errno != 0 {
		return errno
	}
	return nil
}

func (linux) Setgroups(gids []int) error { return unix.Setgroups(gids) }
func (linux) Setresgid(gid int) error    { return unix.Setresgid(gid, gid, gid) }
func (linux) Setresuid(uid int) error    { return unix.Setresuid(uid, uid, uid) }

func (linux) SetKeepCaps(keep bool) error {
	var v uintptr
	if keep {
		v = 1
	}
	return unix.Prctl(unix.PR_SET_KEEPCAPS, v, 0, 0, 0)
}

func (linux) SetNoNewPrivs() error { return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }

// SetBounding and SetCapabilities clear the sets and give them exactly the
// capabilities asked for, so nothing is read first: capability.Load reads
// /proc/self/status, and after pivot_root /proc is the container's, which
// may be missing or fake.
func (linux) SetBounding(keep []capability.Cap) error {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return err
	}
	caps.Clear(capability.BOUNDING)
	caps.Set(capability.BOUNDING, keep...)
	return caps.Apply(capability.BOUNDS)
}

func (linux) SetCapabilities(effective, permitted, inheritable []capability.Cap) error {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return err
	}
	caps.Clear(capability.CAPS)
	caps.Set(capability.EFFECTIVE, effective...)
	caps.Set(capability.PERMITTED, permitted...)
	caps.Set(capability.INHERITABLE, inheritable...)
	return caps.Apply(capability.CAPS)
}

func (linux) ResetAmbient() error                 { return capability.ResetAmbient() }
func (linux) RaiseAmbient(c capability.Cap) error { return capability.SetAmbient(true, c) }

func (linux) LoadSeccomp(f *seccomp.Filter) (int, error) { return f.Load() }
