package container

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
)

// sendPidfd sends a pidfd of pid over the unix socket at path, with kind
// ("standard" for an init, "setns" for an exec) as the message, as runc's
// --pidfd-socket does. pid is this process's child and not yet reaped, so
// the pidfd cannot name another process.
func sendPidfd(path string, pid int, kind string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d (--pidfd-socket needs Linux 5.3): %w", pid, err)
	}
	defer unix.Close(fd)
	if err := initproc.DialSendFd(path, []byte(kind), fd); err != nil {
		if initproc.IsDialError(err) {
			return fmt.Errorf("connect to pidfd socket: %w", err)
		}
		return fmt.Errorf("send pidfd over %s: %w", path, err)
	}
	return nil
}
