package initproc

import (
	"errors"
	"fmt"
	"os"

	"github.com/containerd/console"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/rootfs"
)

// setupConsole opens a pty in the container's devpts, hands the master to
// whoever listens on the console socket (the shim), and makes the slave the
// process's controlling terminal and stdio, and the init's also /dev/console.
func setupConsole(sys Syscalls, socketFd int, size *specs.Box, devConsole bool) error {
	if socketFd < 0 {
		return fmt.Errorf("process.terminal is set but no --console-socket was given")
	}
	sock := os.NewFile(uintptr(socketFd), "console-socket")
	defer sock.Close()

	master, slaveName, slave, err := openPty()
	if err != nil {
		return err
	}
	defer master.Close()
	defer slave.Close()
	if size != nil {
		if err := master.Resize(console.WinSize{Height: uint16(size.Height), Width: uint16(size.Width)}); err != nil {
			return fmt.Errorf("resize pty: %w", err)
		}
	}
	// Exactly one fd, with the pty's name as the message body.
	if err := SendFd(socketFd, []byte(slaveName), int(master.Fd())); err != nil {
		return fmt.Errorf("send pty master over console socket: %w", err)
	}
	if devConsole {
		if err := rootfs.MountConsole(sys, slave); err != nil {
			return err
		}
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup pty onto fd %d: %w", fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make pty the controlling terminal: %w", err)
	}
	return nil
}

// Device numbers of a devpts instance (fs/devpts/inode.c, linux/major.h).
const (
	ptmxMajor, ptmxMinor, ptmxIno = 5, 2, 2
	ptySlaveMajor                 = 136
)

// openPty allocates a pty pair from the devpts at /dev/pts, which the
// container may control: /dev/pts/ptmx is opened without following symlinks
// and checked to be the ptmx of a real devpts before it is opened for use,
// and the slave is taken from the master with TIOCGPTPEER, not by its path
// (CVE-2025-52565).
func openPty() (console.Console, string, *os.File, error) {
	handle, err := os.OpenFile("/dev/pts/ptmx", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", nil, fmt.Errorf("open /dev/pts/ptmx: %w", err)
	}
	defer handle.Close()
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Fstat(int(handle.Fd()), &st); err != nil {
		return nil, "", nil, fmt.Errorf("stat /dev/pts/ptmx: %w", err)
	}
	if err := unix.Fstatfs(int(handle.Fd()), &fs); err != nil {
		return nil, "", nil, fmt.Errorf("statfs /dev/pts/ptmx: %w", err)
	}
	if fs.Type != unix.DEVPTS_SUPER_MAGIC || st.Ino != ptmxIno || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(ptmxMajor, ptmxMinor) {
		return nil, "", nil, fmt.Errorf("/dev/pts/ptmx is not the ptmx of a devpts (filesystem %#x, inode %d, mode %#o, device %d:%d)",
			fs.Type, st.Ino, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	ptmx, err := pathrs.Reopen(handle, unix.O_RDWR|unix.O_NOCTTY)
	if err != nil {
		return nil, "", nil, fmt.Errorf("open pty master: %w", err)
	}
	master, slaveName, err := console.NewPtyFromFile(ptmx)
	if err != nil {
		ptmx.Close()
		return nil, "", nil, fmt.Errorf("open pty: %w", err)
	}
	slave, err := ptyPeer(master, slaveName)
	if err != nil {
		master.Close()
		return nil, "", nil, err
	}
	return master, slaveName, slave, nil
}

// ptyPeer opens the slave of master. Before TIOCGPTPEER (Linux 4.13) it
// can only be found by name, and is then checked to be that pty's device.
func ptyPeer(master console.Console, name string) (*os.File, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno == 0 {
		return os.NewFile(fd, name), nil
	}
	if !errors.Is(errno, unix.EINVAL) && !errors.Is(errno, unix.ENOTTY) {
		return nil, fmt.Errorf("open pty slave (TIOCGPTPEER): %w", errno)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return nil, fmt.Errorf("get pty number: %w", err)
	}
	handle, err := os.OpenFile(name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer handle.Close()
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Fstat(int(handle.Fd()), &st); err != nil {
		return nil, err
	}
	if err := unix.Fstatfs(int(handle.Fd()), &fs); err != nil {
		return nil, err
	}
	if fs.Type != unix.DEVPTS_SUPER_MAGIC || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(ptySlaveMajor, n) {
		return nil, fmt.Errorf("%s is not the slave of pty %d", name, n)
	}
	return pathrs.Reopen(handle, unix.O_RDWR|unix.O_NOCTTY)
}
