package procio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"time"

	runcprocess "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// loggerReadyTimeout bounds how long a logging binary may take to signal
// that it is ready before the container is started without it.
const loggerReadyTimeout = 30 * time.Second

// logger is a logging binary named by a binary:// or binary-v2:// stdio URI.
// As containerd's runtime v2 documentation specifies, it reads the process's
// stdout on fd 3 and stderr on fd 4, and signals on fd 5 that it is ready:
// binary-v2 loggers by writing a byte, legacy binary ones by closing it.
// CONTAINER_ID and CONTAINER_NAMESPACE name the container.
//
// The command is the runc shim's (NewBinaryCmd). Its NewBinaryIO is not
// used: it waits for the logger with os/exec, which races the shim's reaper
// for the exit, and waits for readiness without a bound; here the logger
// runs under go-runc's Monitor, the reaper, and both waits are bounded.
type logger struct {
	cmd   *exec.Cmd
	exits chan runc.Exit
	// Stdout and Stderr are the write ends of the logger's fd 3 and 4.
	Stdout, Stderr *os.File
}

func startLogger(ctx context.Context, u *url.URL, id string) (_ *logger, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	// The logger's ends of the pipes are closed here once it has them, and
	// every end on failure.
	var theirs, ours []*os.File
	defer func() {
		closeFiles(theirs)
		if retErr != nil {
			closeFiles(ours)
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err != nil {
			return nil, nil, fmt.Errorf("failed to create logging binary pipe: %w", err)
		}
		return r, w, nil
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, err
	}
	theirs, ours = append(theirs, outR), append(ours, outW)
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}
	theirs, ours = append(theirs, errR), append(ours, errW)
	readyR, readyW, err := pipe()
	if err != nil {
		return nil, err
	}
	theirs, ours = append(theirs, readyW), append(ours, readyR)

	// The command line and environment the runc shim gives a logging
	// binary.
	cmd := runcprocess.NewBinaryCmd(u, id, ns)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	// go-runc's monitor is the shim's reaper, which must see the exit.
	exits, err := runc.Monitor.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("failed to start logging binary %s: %w", u.Path, err)
	}
	l := &logger{cmd: cmd, exits: exits, Stdout: outW, Stderr: errW}
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
			_, _ = runc.Monitor.Wait(cmd, exits)
		}
	}()
	closeFiles(theirs)
	theirs = nil

	if err := readyR.SetReadDeadline(time.Now().Add(loggerReadyTimeout)); err != nil {
		return nil, fmt.Errorf("failed to wait for logging binary %s: %w", u.Path, err)
	}
	n, err := readyR.Read(make([]byte, 1))
	readyR.Close()
	ours = ours[:2]
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("failed to wait for logging binary %s to be ready: %w", u.Path, err)
	case n == 0 && u.Scheme == "binary-v2":
		return nil, fmt.Errorf("logging binary %s exited or closed fd 5 without signalling that it is ready", u.Path)
	}
	return l, nil
}

// close ends the logger once its input is closed: it is given timeout to
// exit on EOF, then as long again after SIGTERM before it is killed.
func (l *logger) close(timeout time.Duration) error {
	closeFiles([]*os.File{l.Stdout, l.Stderr})
	done := make(chan struct{})
	go func() {
		_, _ = runc.Monitor.Wait(l.cmd, l.exits)
		close(done)
	}()
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		select {
		case <-done:
			return nil
		case <-time.After(timeout):
		}
		_ = l.cmd.Process.Signal(sig)
	}
	<-done
	return fmt.Errorf("logging binary %s did not exit after its input was closed", l.cmd.Path)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
