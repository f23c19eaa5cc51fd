package initproc

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// One descriptor travels over a unix socket in one message: the pty master
// to the console socket, a mount source to the init, a pidfd to
// --pidfd-socket, a seccomp listener to its agent. These are the one sender
// and the one receiver of that shape (runc's utils.SendRawFd and RecvFile).

// SendFd sends msg with fd attached (SCM_RIGHTS) in one sendmsg(2) on the
// socket sock.
func SendFd(sock int, msg []byte, fd int) error {
	return unix.Sendmsg(sock, msg, unix.UnixRights(fd), nil, 0)
}

// dialError is DialSendFd's failure to connect, which callers word apart
// from a failure to send (IsDialError).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// DialSendFd connects to the unix socket at path and sends msg with fd
// attached in one message.
func DialSendFd(path string, msg []byte, fd int) error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return &dialError{err: err}
	}
	defer conn.Close()
	_, _, err = conn.WriteMsgUnix(msg, unix.UnixRights(fd), nil)
	return err
}

// IsDialError tells whether err is DialSendFd's failure to connect.
func IsDialError(err error) bool {
	var d *dialError
	return errors.As(err, &d)
}

// RecvFd reads one message on the socket sock into buf, retrying on EINTR,
// and returns its length and the first descriptor attached (close-on-exec),
// or -1 if none was. Any further descriptors are closed: a sender that
// attaches more than it should does not leak them into this process.
func RecvFd(sock int, buf []byte) (n int, fd int, err error) {
	oob := make([]byte, unix.CmsgSpace(4*4))
	var oobn int
	for {
		n, oobn, _, _, err = unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, -1, err
	}
	fd = -1
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0, -1, err
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, f := range fds {
			if fd < 0 {
				fd = f
			} else {
				unix.Close(f)
			}
		}
	}
	return n, fd, nil
}
