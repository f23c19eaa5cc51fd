// Package process keeps the shim's record of container processes (the init
// process and execs): their state, exit status and waiters, and their stdio
// (package procio).
//
// It never calls the OCI runtime; the task service does, and reports here.
package process

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"

	"github.com/hostnet-dev/hostnet/shim/procio"
)

// State is where a process is in its life.
type State int

const (
	// Created processes exist but do not run the user's program yet: an init
	// process waiting for `start`, or an exec not started.
	Created State = iota
	Running
	Paused
	// Stopped processes have exited and their exit has been published.
	Stopped
	Deleted
)

func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Stopped:
		return "stopped"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Process is one container process.
type Process struct {
	// ID is the exec ID, or the container ID for the init process.
	ID    string
	Stdio stdio.Stdio

	mu         sync.Mutex
	state      State
	pid        int
	io         *procio.IO
	exitStatus int
	exitedAt   time.Time
	exited     chan struct{}
	// winsize is a terminal size asked for before the process had its
	// stdio, handed to it by SetCreated.
	winsize *console.WinSize
}

// New returns a process in the Created state.
func New(id string, sio stdio.Stdio) *Process {
	return &Process{ID: id, Stdio: sio, exited: make(chan struct{})}
}

// Pid is the process's pid, 0 until it is known.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// State returns the current state.
func (p *Process) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// IO returns the process's stdio plumbing, nil if not set up.
func (p *Process) IO() *procio.IO {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.io
}

// SetCreated records the pid and stdio of a process the runtime has created.
func (p *Process) SetCreated(pid int, pio *procio.IO) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pid, p.io = pid, pio
	if p.winsize != nil && pio != nil {
		// Only kept by pio: its terminal has not arrived yet.
		_ = pio.Resize(*p.winsize)
		p.winsize = nil
	}
}

// PendingWinsize is the terminal size asked for before the process had its
// stdio, if any.
func (p *Process) PendingWinsize() (console.WinSize, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.winsize == nil {
		return console.WinSize{}, false
	}
	return *p.winsize, true
}

// Resize sets the size of the process's terminal. A process that has no
// stdio yet, an exec not started, keeps the size for its terminal: clients
// (`nerdctl exec -it`, `ctr tasks exec -t`) resize before they start it.
func (p *Process) Resize(ws console.WinSize) error {
	if !p.Stdio.Terminal {
		return fmt.Errorf("process %s has no terminal: %w", p.ID, errdefs.ErrFailedPrecondition)
	}
	p.mu.Lock()
	pio := p.io
	if pio == nil {
		p.winsize = &ws
	}
	p.mu.Unlock()
	if pio == nil {
		return nil
	}
	return pio.Resize(ws)
}

// SetRunning moves a created process to Running.
func (p *Process) SetRunning() error {
	return p.transition(Running, Created)
}

// SetPaused moves a running process to Paused, or back with paused false.
func (p *Process) SetPaused(paused bool) error {
	if paused {
		return p.transition(Paused, Running)
	}
	return p.transition(Running, Paused)
}

// SetDeleted marks a process that has exited, or never ran, as deleted.
func (p *Process) SetDeleted() error {
	return p.transition(Deleted, Stopped, Created)
}

func (p *Process) transition(to State, from ...State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range from {
		if p.state == f {
			p.state = to
			return nil
		}
	}
	return fmt.Errorf("process %s is %s, cannot become %s: %w", p.ID, p.state, to, errdefs.ErrFailedPrecondition)
}

// SetExited records the exit and releases waiters. It reports false if the
// exit was already recorded, so that callers publish it exactly once.
func (p *Process) SetExited(status int, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false
	default:
	}
	p.exitStatus, p.exitedAt = status, at
	if p.state != Deleted {
		p.state = Stopped
	}
	close(p.exited)
	return true
}

// Exited is closed once the exit is recorded.
func (p *Process) Exited() <-chan struct{} {
	return p.exited
}

// ExitStatus returns the exit status and time; both are zero until exit.
func (p *Process) ExitStatus() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitStatus, p.exitedAt
}

// Wait blocks until the process has exited or ctx is done.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
