package process

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
)

// IO connects a process's stdio, as containerd hands it to the shim (fifo
// paths or a file:// URI), to what the runtime gives the process: pipes, or
// a pseudo-terminal whose master the runtime sends over a console socket.
//
// Use: NewIO, pass it to the runtime with ApplyCreate or ApplyExec, Start
// once the runtime returned, Shutdown when the process exits, Close when it
// is deleted.
type IO struct {
	sio     stdio.Stdio
	epoller *console.Epoller

	pipes   runc.IO      // without a terminal
	socket  *runc.Socket // with a terminal, until the master arrives
	console *console.EpollConsole

	// stdinHold is the shim's own write end of the stdin fifo. Holding it
	// keeps the process's stdin open while containerd's client reconnects;
	// CloseStdin drops it so that stdin reaches EOF once the client closes.
	stdinHold io.Closer
	stdinIn   io.Closer

	copying sync.WaitGroup // output copies still running
	mu      sync.Mutex
	closers []io.Closer
	closed  bool
}

// NewIO prepares stdio for a process. uid and gid own the pipes given to the
// process; epoller multiplexes terminals and must outlive the process.
func NewIO(sio stdio.Stdio, uid, gid int, epoller *console.Epoller) (_ *IO, retErr error) {
	i := &IO{sio: sio, epoller: epoller}
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
		if _, _, err := outputTarget(sio.Stdout); err != nil {
			return nil, err
		}
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
	if i.sio.Stdout != "" {
		w, err := i.openOutput(ctx, i.sio.Stdout)
		if err != nil {
			return err
		}
		i.copyOut(w, i.pipes.Stdout())
	}
	if i.sio.Stderr != "" {
		w, err := i.openOutput(ctx, i.sio.Stderr)
		if err != nil {
			return err
		}
		i.copyOut(w, i.pipes.Stderr())
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
	i.mu.Unlock()
	i.addCloser(ec)
	if i.sio.Stdout != "" {
		// A terminal has one output stream; stderr is merged into it.
		w, err := i.openOutput(ctx, i.sio.Stdout)
		if err != nil {
			return err
		}
		i.copyOut(w, ec)
	}
	if i.sio.Stdin != "" {
		return i.startStdin(ctx, ec)
	}
	return nil
}

func (i *IO) startStdin(ctx context.Context, dst io.WriteCloser) error {
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
	go func() {
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

// Resize sets the terminal size; without a terminal it is an error.
func (i *IO) Resize(ws console.WinSize) error {
	i.mu.Lock()
	c := i.console
	i.mu.Unlock()
	if c == nil {
		return fmt.Errorf("process has no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return c.Resize(ws)
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
}

func (i *IO) addCloser(c io.Closer) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.closers = append(i.closers, c)
}

// openOutput opens where the process's output goes: a fifo containerd's
// client reads, or a file for file:// URIs.
func (i *IO) openOutput(ctx context.Context, target string) (io.WriteCloser, error) {
	path, isFile, err := outputTarget(target)
	if err != nil {
		return nil, err
	}
	if isFile {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("failed to open log file %s: %w", path, err)
		}
		return f, nil
	}
	// Open a read end first so that opening the write end never blocks and
	// writes never fail with EPIPE while the client is (re)connecting.
	r, err := fifo.OpenFifo(ctx, path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("failed to open fifo %s: %w", path, err)
	}
	w, err := fifo.OpenFifo(ctx, path, syscall.O_WRONLY, 0)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("failed to open fifo %s: %w", path, err)
	}
	return &pairCloser{WriteCloser: w, other: r}, nil
}

// outputTarget parses a stdout/stderr target: a plain fifo path, fifo:// or
// file://. Logging binaries (binary://) are not supported yet.
func outputTarget(target string) (path string, isFile bool, err error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", false, fmt.Errorf("invalid stdio target %q: %w", target, errdefs.ErrInvalidArgument)
	}
	switch u.Scheme {
	case "", "fifo":
		if u.Scheme == "" {
			return target, false, nil
		}
		return u.Path, false, nil
	case "file":
		return u.Path, true, nil
	case "binary", "binary-v2":
		return "", false, fmt.Errorf("stdio logging binaries (%s) are not supported by the hostnet shim: %w", target, errdefs.ErrNotImplemented)
	}
	return "", false, fmt.Errorf("unknown stdio scheme %q: %w", u.Scheme, errdefs.ErrInvalidArgument)
}

// pairCloser writes to a fifo and closes its held-open read end with it.
type pairCloser struct {
	io.WriteCloser
	other io.Closer
}

func (p *pairCloser) Close() error {
	return errors.Join(p.WriteCloser.Close(), p.other.Close())
}
