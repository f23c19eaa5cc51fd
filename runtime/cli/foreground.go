package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
	"github.com/hostnet-dev/hostnet/runtime/logging"
)

// foreground waits for a process that `run` or `exec` started without
// --detach, as runc's signalHandler does: every signal hostnet-runc gets is
// forwarded to the process, SIGWINCH resizes its terminal, and SIGCHLD reaps
// the children that exit, the process (whose exit status becomes ours) and,
// for run, the container's orphans that hostnet-runc adopts as their
// subreaper.
type foreground struct {
	signals chan os.Signal
	log     *logging.Logger
}

// newForeground starts catching signals, before the process exists so that
// none sent meanwhile is lost, and makes hostnet-runc a subreaper if asked.
func newForeground(log *logging.Logger, subreaper bool) *foreground {
	if subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warnf("become a subreaper: %v", err)
		}
	}
	f := &foreground{signals: make(chan os.Signal, 2048), log: log}
	signal.Notify(f.signals)
	return f
}

// stop restores the default signal handling.
func (f *foreground) stop() { signal.Stop(f.signals) }

// wait forwards signals to pid until it exits and returns its exit status
// as a shell reports it (128+n for a signal).
func (f *foreground) wait(pid int, t *tty) int {
	t.resize()
	// The process may have exited before its SIGCHLD was caught.
	if status, ok := f.reap(pid); ok {
		return status
	}
	for s := range f.signals {
		switch s {
		case unix.SIGWINCH:
			t.resize()
		case unix.SIGCHLD:
			if status, ok := f.reap(pid); ok {
				return status
			}
		case unix.SIGURG:
			// The Go runtime's preemption signal, not the caller's.
		default:
			sig := s.(unix.Signal)
			f.log.Debugf("forwarding signal %d (%s) to %d", int(sig), unix.SignalName(sig), pid)
			if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
				f.log.Errorf("forward signal %s to %d: %v", unix.SignalName(sig), pid, err)
			}
		}
	}
	return -1
}

// reap collects every exited child and reports pid's exit status once pid
// is among them.
func (f *foreground) reap(pid int) (int, bool) {
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || p <= 0 {
			return 0, false
		}
		status := ws.ExitStatus()
		if ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
		f.log.Debugf("process exited: pid=%d status=%d", p, status)
		if p == pid {
			return status, true
		}
	}
}

// tty is the pty of a foreground process with a terminal: hostnet-runc
// receives its master from the init over a socketpair, as runc's own
// console socket, and copies the caller's stdin to it and its output to
// the caller's stdout, with the caller's terminal, if it has one, in raw
// mode so that keys (^C included) reach the process as they are typed.
type tty struct {
	// socket is hostnet-runc's end of the socketpair; conn goes to the init.
	socket, conn *os.File
	host         console.Console // the caller's terminal, or nil
	epoller      *console.Epoller
	pty          *console.EpollConsole
	output       sync.WaitGroup
	closed       sync.Once
}

// newTTY makes the socketpair the init sends the pty master over. The
// process gets the caller's terminal size from the start (the init sizes
// the pty), not only once hostnet-runc has resized it, as runc does, after
// the process may have looked.
func newTTY(p *specs.Process) (*tty, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create console socketpair: %w", err)
	}
	t := &tty{socket: os.NewFile(uintptr(fds[0]), "console-socket"), conn: os.NewFile(uintptr(fds[1]), "console-conn")}
	if t.host = hostConsole(); t.host != nil {
		if ws, err := t.host.Size(); err == nil && ws.Height > 0 && ws.Width > 0 {
			p.ConsoleSize = &specs.Box{Height: uint(ws.Height), Width: uint(ws.Width)}
		}
	}
	return t, nil
}

// hostConsole finds the caller's terminal as runc does: on stderr, stdout
// or stdin, else the controlling terminal.
func hostConsole() console.Console {
	for _, f := range []*os.File{os.Stderr, os.Stdout, os.Stdin} {
		if c, err := console.ConsoleFromFile(f); err == nil {
			return c
		}
	}
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		if c, err := console.ConsoleFromFile(f); err == nil {
			return c
		}
		f.Close()
	}
	return nil
}

// attach receives the pty master, which the init has sent by the time the
// process is ready, and starts copying. runc refuses a terminal when the
// caller has none; hostnet-runc copies stdio through the pty all the same,
// without raw mode or resizing: a pipe works as well as a terminal there.
func (t *tty) attach() error {
	t.conn.Close()
	master, err := recvFd(t.socket)
	if err != nil {
		return fmt.Errorf("receive pty master: %w", err)
	}
	cons, err := console.ConsoleFromFile(master)
	if err != nil {
		master.Close()
		return err
	}
	// The output goes to a terminal or a file as it is: no \r added.
	if err := console.ClearONLCR(cons.Fd()); err != nil {
		cons.Close()
		return err
	}
	if t.epoller, err = console.NewEpoller(); err != nil {
		cons.Close()
		return err
	}
	if t.pty, err = t.epoller.Add(cons); err != nil {
		cons.Close()
		t.epoller.Close()
		return err
	}
	go func() { _ = t.epoller.Wait() }()
	go func() { _, _ = io.Copy(t.pty, os.Stdin) }()
	t.output.Add(1)
	go func() {
		defer t.output.Done()
		_, _ = io.Copy(os.Stdout, t.pty)
	}()
	if t.host != nil {
		if err := t.host.SetRaw(); err != nil {
			return fmt.Errorf("set the terminal to raw mode: %w", err)
		}
	}
	return nil
}

// resize gives the pty the caller's terminal size; errors are ignored, as
// runc does: the terminal may be gone already.
func (t *tty) resize() {
	if t != nil && t.pty != nil && t.host != nil {
		_ = t.pty.ResizeFrom(t.host)
	}
}

// close drains what the process wrote, closes the pty and restores the
// caller's terminal.
func (t *tty) close() {
	if t != nil {
		t.closed.Do(t.doClose)
	}
}

func (t *tty) doClose() {
	t.conn.Close()
	t.socket.Close()
	if t.pty != nil {
		_ = t.pty.Shutdown(t.epoller.CloseConsole)
		t.output.Wait()
		t.pty.Close()
		t.epoller.Close()
	}
	if t.host != nil {
		_ = t.host.Reset()
	}
}

// recvFd receives one descriptor sent with SCM_RIGHTS, named by the
// message that carries it (the pty's name).
func recvFd(socket *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	n, fd, err := initproc.RecvFd(int(socket.Fd()), name)
	if err != nil {
		return nil, err
	}
	if fd < 0 {
		return nil, errors.New("expected one descriptor, got none")
	}
	return os.NewFile(uintptr(fd), string(name[:n])), nil
}
