package process

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
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

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, path string
		err              error
	}{
		{in: "/run/containerd/fifo/1/x-stdout", scheme: "fifo", path: "/run/containerd/fifo/1/x-stdout"},
		{in: "fifo:///run/f", scheme: "fifo", path: "/run/f"},
		{in: "file:///var/log/c.log", scheme: "file", path: "/var/log/c.log"},
		{in: "binary:///usr/bin/logger?id=1", scheme: "binary", path: "/usr/bin/logger"},
		{in: "binary-v2:///usr/bin/logger", scheme: "binary-v2", path: "/usr/bin/logger"},
		{in: "file://relative/x", err: errdefs.ErrInvalidArgument},
		{in: "ftp://host/x", err: errdefs.ErrInvalidArgument},
	} {
		u, err := parseTarget(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("parseTarget(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || u.Scheme != tc.scheme || u.Path != tc.path {
			t.Errorf("parseTarget(%q) = %v, %v", tc.in, u, err)
		}
	}
}

func TestLoggerArgs(t *testing.T) {
	u, err := url.Parse("binary:///bin/logger?tag=web&verbose=&driver=json")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(loggerArgs(u), " ")
	if want := "driver json tag web verbose"; got != want {
		t.Errorf("loggerArgs = %q, want %q", got, want)
	}
}

func TestExitRecord(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExit(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadExit without a record = %v", err)
	}
	want := runc.Exit{Pid: 42, Status: 3, Timestamp: time.Unix(1700000000, 5).UTC()}
	if err := WriteExit(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExit(dir)
	if err != nil || got.Pid != want.Pid || got.Status != want.Status || !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("ReadExit = %+v, %v; want %+v", got, err, want)
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
