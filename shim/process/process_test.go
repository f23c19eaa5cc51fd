package process

import (
	"context"
	"errors"
	"testing"
	"time"

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

func TestOutputTarget(t *testing.T) {
	for _, tc := range []struct {
		in, path string
		file     bool
		err      error
	}{
		{in: "/run/containerd/fifo/1/x-stdout", path: "/run/containerd/fifo/1/x-stdout"},
		{in: "fifo:///run/f", path: "/run/f"},
		{in: "file:///var/log/c.log", path: "/var/log/c.log", file: true},
		{in: "binary:///usr/bin/logger?id=1", err: errdefs.ErrNotImplemented},
		{in: "ftp://host/x", err: errdefs.ErrInvalidArgument},
	} {
		path, file, err := outputTarget(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("outputTarget(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || path != tc.path || file != tc.file {
			t.Errorf("outputTarget(%q) = %q, %v, %v", tc.in, path, file, err)
		}
	}
}
