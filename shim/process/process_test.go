package process

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
)

func TestLifecycle(t *testing.T) {
	p := New("init", stdio.Stdio{})
	if p.State() != Created {
		t.Fatalf("new process is %s", p.State())
	}
	if err := p.SetPaused(true); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("pausing a created process: %v", err)
	}
	if err := p.SetRunning(); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRunning(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("starting twice: %v", err)
	}
	if err := p.SetDeleted(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("deleting a running process: %v", err)
	}
	if err := p.SetPaused(true); err != nil || p.State() != Paused {
		t.Fatalf("pause: %v, %s", err, p.State())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait before exit = %v", err)
	}

	at := time.Unix(1700000000, 0)
	waited := make(chan error)
	go func() { waited <- p.Wait(context.Background()) }()
	if !p.SetExited(137, at) {
		t.Fatal("first SetExited reported a duplicate")
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if p.SetExited(0, time.Now()) {
		t.Error("second SetExited was accepted")
	}
	if st, when := p.ExitStatus(); st != 137 || !when.Equal(at) || p.State() != Stopped {
		t.Errorf("exit = %d at %v, state %s", st, when, p.State())
	}
	if err := p.SetDeleted(); err != nil {
		t.Fatal(err)
	}
}

func TestResizeBeforeStdio(t *testing.T) {
	if err := New("plain", stdio.Stdio{}).Resize(console.WinSize{Width: 80, Height: 24}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("resizing a process without a terminal: %v, want a failed precondition", err)
	}
	p := New("tty", stdio.Stdio{Terminal: true})
	if _, ok := p.PendingWinsize(); ok {
		t.Error("a new process has a pending size")
	}
	for _, ws := range []console.WinSize{{Width: 80, Height: 24}, {Width: 91, Height: 27}} {
		if err := p.Resize(ws); err != nil {
			t.Fatalf("resizing an exec not started: %v", err)
		}
	}
	if ws, ok := p.PendingWinsize(); !ok || ws.Width != 91 || ws.Height != 27 {
		t.Errorf("pending size = %+v, %v; want the last one, 91x27", ws, ok)
	}
}
