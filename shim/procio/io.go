// Package procio connects a container process's stdio, as containerd hands
// it to the shim (fifos, files, logging binaries), to the pipes or terminal
// the OCI runtime gives the process.
package procio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
)

// loggerExitTimeout is how long a logging binary gets to exit once its input
// is closed, and again after SIGTERM.
const loggerExitTimeout = 5 * time.Second

// IO connects a process's stdio, as containerd hands it to the shim (fifo
// paths, file:// URIs or a logging binary's binary:// URI), to what the
// runtime gives the process: pipes, or a pseudo-terminal whose master the
// runtime sends over a console socket.
//
// Use: New, pass it to the runtime with ApplyCreate or ApplyExec, Start
// once the runtime returned, Shutdown when the process exits, Close when it
// is deleted.
type IO struct {
	id      string // the container's, for logging binaries
	sio     stdio.Stdio
	epoller *console.Epoller

	pipes   runc.IO      // without a terminal
	socket  *runc.Socket // with a terminal, until the master arrives
	console *console.EpollConsole
	winsize *console.WinSize // asked for before console arrived

	// stdinHold is the shim's own write end of the stdin fifo. Holding it
	// keeps the process's stdin open while containerd's client reconnects;
	// CloseStdin drops it so that stdin reaches EOF once the client closes.
	stdinHold io.Closer
	stdinIn   io.Closer

	copying sync.WaitGroup // output copies still running
	stdinWG sync.WaitGroup // the stdin copy
	mu      sync.Mutex
	closers []io.Closer
	logger  *logger
	closed  bool
}

// New prepares stdio for a process of container id. uid and gid own the
// pipes given to the process; epoller multiplexes terminals and must outlive
// the process.
func New(id string, sio stdio.Stdio, uid, gid int, epoller *console.Epoller) (_ *IO, retErr error) {
	i := &IO{id: id, sio: sio, epoller: epoller}
	if sio.Stdout != "" {
		u, err := parseTarget(sio.Stdout)
		if err != nil {
			return nil, err
		}
		if isBinary(u) && sio.Stdin != "" && !sio.Terminal {
			return nil, fmt.Errorf("stdin cannot be used with logging binary %s: %w", u.Path, errdefs.ErrInvalidArgument)
		}
	}
	var err error
	switch {
	case sio.Terminal:
		if i.socket, err = runc.NewTempConsoleSocket(); err != nil {
			return nil, fmt.Errorf("failed to create console socket: %w", err)
		}
	case sio.IsNull():
		if i.pipes, err = runc.NewNullIO(); err != nil {
			return nil, fmt.Errorf("failed to open null io: %w", err)
		}
	default:
		i.pipes, err = runc.NewPipeIO(uid, gid, func(o *runc.IOOption) {
			o.OpenStdin = sio.Stdin != ""
			o.OpenStdout = sio.Stdout != ""
			o.OpenStderr = sio.Stderr != ""
		})
		if err != nil {
			return nil, fmt.Errorf("failed to create stdio pipes: %w", err)
		}
	}
	return i, nil
}

// ApplyCreate hands the process's stdio to `runtime create`.
func (i *IO) ApplyCreate(o *runc.CreateOpts) {
	if i.socket != nil {
		o.ConsoleSocket = i.socket
	} else {
		o.IO = i.pipes
	}
}

// ApplyExec hands the process's stdio to `runtime exec`.
func (i *IO) ApplyExec(o *runc.ExecOpts) {
	if i.socket != nil {
		o.ConsoleSocket = i.socket
	} else {
		o.IO = i.pipes
	}
}

// Start begins copying between containerd's stdio and the process. Call it
// after the runtime created the process.
func (i *IO) Start(ctx context.Context) error {
	// Opening a fifo blocks until its other end is open; never forever.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if i.socket != nil {
		return i.startConsole(ctx)
	}
	if i.sio.IsNull() {
		return nil
	}
	stdout, stderr, err := i.openOutputs(ctx, true)
	if err != nil {
		return err
	}
	if stdout != nil {
		i.copyOut(stdout, i.pipes.Stdout())
	}
	if stderr != nil {
		i.copyOut(stderr, i.pipes.Stderr())
	}
	if i.sio.Stdin != "" {
		return i.startStdin(ctx, i.pipes.Stdin())
	}
	return nil
}

func (i *IO) startConsole(ctx context.Context) error {
	defer i.socket.Close()
	master, err := i.socket.ReceiveMaster()
	if err != nil {
		return fmt.Errorf("failed to receive console master: %w", err)
	}
	ec, err := i.epoller.Add(master)
	if err != nil {
		master.Close()
		return fmt.Errorf("failed to watch console: %w", err)
	}
	i.mu.Lock()
	i.console = ec
	if i.winsize != nil {
		err = ec.Resize(*i.winsize)
	}
	i.mu.Unlock()
	i.addCloser(ec)
	if err != nil {
		return fmt.Errorf("failed to resize console: %w", err)
	}
	// A terminal has one output stream; stderr is merged into it.
	stdout, _, err := i.openOutputs(ctx, false)
	if err != nil {
		return err
	}
	if stdout != nil {
		i.copyOut(stdout, ec)
	}
	if i.sio.Stdin != "" {
		return i.startStdin(ctx, ec)
	}
	return nil
}

// openOutputs opens where the process's stdout and, if wanted, stderr go;
// either is nil if the process has none. One logging binary takes both.
func (i *IO) openOutputs(ctx context.Context, wantStderr bool) (stdout, stderr io.WriteCloser, err error) {
	if i.sio.Stdout == "" && (!wantStderr || i.sio.Stderr == "") {
		return nil, nil, nil
	}
	if u, err := parseTarget(i.sio.Stdout); err == nil && isBinary(u) {
		l, err := startLogger(ctx, u, i.id)
		if err != nil {
			return nil, nil, err
		}
		i.mu.Lock()
		i.logger = l
		i.mu.Unlock()
		if !wantStderr {
			l.Stderr.Close()
			return l.Stdout, nil, nil
		}
		return l.Stdout, l.Stderr, nil
	}
	if i.sio.Stdout != "" {
		if stdout, err = i.openOutput(ctx, i.sio.Stdout); err != nil {
			return nil, nil, err
		}
	}
	if wantStderr && i.sio.Stderr != "" {
		if stderr, err = i.openOutput(ctx, i.sio.Stderr); err != nil {
			if stdout != nil {
				stdout.Close()
			}
			return nil, nil, err
		}
	}
	return stdout, stderr, nil
}

func (i *IO) startStdin(ctx context.Context, dst io.WriteCloser) error {
	// containerd/fifo closes a fifo whose context ends before its
	// asynchronous open is noticed, even for these non-blocking opens: the
	// caller's timeout must not reach them, or the process may see EOF at
	// once or lose stdin when the client closes its end.
	ctx = context.WithoutCancel(ctx)
	in, err := fifo.OpenFifo(ctx, i.sio.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("failed to open stdin fifo %s: %w", i.sio.Stdin, err)
	}
	hold, err := fifo.OpenFifo(ctx, i.sio.Stdin, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		in.Close()
		return fmt.Errorf("failed to open stdin fifo %s: %w", i.sio.Stdin, err)
	}
	i.mu.Lock()
	i.stdinIn, i.stdinHold = in, hold
	i.mu.Unlock()
	i.stdinWG.Add(1)
	go func() {
		defer i.stdinWG.Done()
		_, _ = io.Copy(dst, in)
		// With a terminal, dst is the console, which must stay open for
		// output; the process sees EOF when the client sends ^D instead.
		if i.socket == nil {
			dst.Close()
		}
		in.Close()
	}()
	return nil
}

func (i *IO) copyOut(dst io.WriteCloser, src io.Reader) {
	// Also closed by Close, to unblock a write nobody reads any more.
	i.addCloser(dst)
	i.copying.Add(1)
	go func() {
		defer i.copying.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
	}()
}

// CloseStdin lets the process's stdin reach EOF once containerd's client
// closes its end too.
func (i *IO) CloseStdin() error {
	i.mu.Lock()
	hold := i.stdinHold
	i.stdinHold = nil
	i.mu.Unlock()
	if hold == nil {
		return nil
	}
	return hold.Close()
}

// Resize sets the terminal size. Until the runtime has sent the terminal it
// is kept and applied once the terminal arrives; without a terminal it is an
// error.
func (i *IO) Resize(ws console.WinSize) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case i.console != nil:
		// Under i.mu, an ioctl: so that an older size applied by
		// startConsole can never overwrite a newer one.
		return i.console.Resize(ws)
	case i.socket != nil:
		i.winsize = &ws
		return nil
	}
	return fmt.Errorf("process has no terminal: %w", errdefs.ErrFailedPrecondition)
}

// Shutdown is called when the process exits: a terminal's output may be
// held open by processes the exited one left behind, so stop reading it.
func (i *IO) Shutdown() {
	i.mu.Lock()
	c := i.console
	i.mu.Unlock()
	if c != nil {
		_ = c.Shutdown(i.epoller.CloseConsole)
	}
}

// Close waits up to timeout for the output to drain, then releases every
// pipe, fifo and terminal, which ends any copy still running.
func (i *IO) Close(timeout time.Duration) {
	drained := make(chan struct{})
	go func() {
		i.copying.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(timeout):
	}

	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return
	}
	i.closed = true
	closers := append(i.closers, i.stdinIn, i.stdinHold)
	i.stdinIn, i.stdinHold, i.closers = nil, nil, nil
	l := i.logger
	i.mu.Unlock()

	i.Shutdown()
	if i.socket != nil {
		i.socket.Close()
	}
	if i.pipes != nil {
		i.pipes.Close()
	}
	for _, c := range closers {
		if c != nil {
			c.Close()
		}
	}
	<-drained
	i.stdinWG.Wait()
	if l != nil {
		if err := l.close(loggerExitTimeout); err != nil {
			log.L.WithError(err).WithField("id", i.id).Warn("failed to stop logging binary")
		}
	}
}

func (i *IO) addCloser(c io.Closer) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.closers = append(i.closers, c)
}

// openOutput opens where an output stream goes: a fifo containerd's client
// reads, or a file for file:// URIs.
func (i *IO) openOutput(ctx context.Context, target string) (io.WriteCloser, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("failed to open log file %s: %w", u.Path, err)
		}
		return f, nil
	}
	// The write end first, and blocking: open(2) returns once a reader has
	// the fifo open, and that must be the client's. containerd's client
	// (cio) opens its read end from a goroutine before it sends Create or
	// Exec, so nothing orders that open before the process's output. Were
	// the shim's own read end open first, its write end would open at once,
	// and a short-lived process could write, exit and have both shim ends
	// closed before the client's open(2) ran: the output is lost and the
	// client's open then waits forever for a writer (`ctr tasks exec` hung
	// in it under load, after its exec had exited). The runc shim opens in
	// this order too; ctx bounds the wait for a client that never comes.
	w, err := fifo.OpenFifo(ctx, u.Path, syscall.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("failed to open fifo %s: %w", u.Path, err)
	}
	// Then a read end of our own, held so that writes do not fail with
	// EPIPE while the client reconnects (containerd restarts, `ctr task
	// attach`). It opens at once: a writer exists.
	r, err := fifo.OpenFifo(ctx, u.Path, syscall.O_RDONLY, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("failed to open fifo %s: %w", u.Path, err)
	}
	return &pairCloser{WriteCloser: w, other: r}, nil
}

// parseTarget parses a stdout/stderr target: a plain fifo path, fifo://,
// file://, or a logging binary's binary:// or binary-v2://. A plain path
// comes back as a fifo:// URI.
func parseTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("invalid stdio target %q: %w", target, errdefs.ErrInvalidArgument)
	}
	switch u.Scheme {
	case "":
		return &url.URL{Scheme: "fifo", Path: target}, nil
	case "fifo", "file", "binary", "binary-v2":
	default:
		return nil, fmt.Errorf("unknown stdio scheme %q in %q: %w", u.Scheme, target, errdefs.ErrInvalidArgument)
	}
	if u.Host != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("stdio target %q must name an absolute path: %w", target, errdefs.ErrInvalidArgument)
	}
	return u, nil
}

func isBinary(u *url.URL) bool {
	return u.Scheme == "binary" || u.Scheme == "binary-v2"
}

// pairCloser writes to a fifo and closes its held-open read end with it.
type pairCloser struct {
	io.WriteCloser
	other io.Closer
}

func (p *pairCloser) Close() error {
	return errors.Join(p.WriteCloser.Close(), p.other.Close())
}
