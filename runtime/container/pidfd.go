package container

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
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
	conn, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("connect to pidfd socket: %w", err)
	}
	defer conn.Close()
	if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte(kind), unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("send pidfd over %s: %w", path, err)
	}
	return nil
}
