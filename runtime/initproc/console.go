package initproc

import (
	"fmt"
	"os"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupConsole opens a pty in the container's devpts, hands the master to
// whoever listens on the console socket (the shim), and makes the slave the
// process's controlling terminal and stdio, and the init's also /dev/console.
func setupConsole(socketFd int, size *specs.Box, devConsole bool) error {
	if socketFd < 0 {
		return fmt.Errorf("process.terminal is set but no --console-socket was given")
	}
	sock := os.NewFile(uintptr(socketFd), "console-socket")
	defer sock.Close()

	master, slaveName, err := console.NewPty()
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	defer master.Close()
	if size != nil {
		if err := master.Resize(console.WinSize{Height: uint16(size.Height), Width: uint16(size.Width)}); err != nil {
			return fmt.Errorf("resize pty: %w", err)
		}
	}
	// Exactly one fd, with the pty's name as the message body.
	if err := unix.Sendmsg(socketFd, []byte(slaveName), unix.UnixRights(int(master.Fd())), nil, 0); err != nil {
		return fmt.Errorf("send pty master over console socket: %w", err)
	}
	slave, err := unix.Open(slaveName, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", slaveName, err)
	}
	defer unix.Close(slave)
	if devConsole {
		if err := unix.Mount(slaveName, "/dev/console", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount %s on /dev/console: %w", slaveName, err)
		}
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup pty onto fd %d: %w", fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make pty the controlling terminal: %w", err)
	}
	return nil
}
