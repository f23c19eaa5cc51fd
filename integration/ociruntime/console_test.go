package ociruntime

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExecConsoleSocketNeedsTerminal: like runc, `exec --console-socket`
// refuses a process without a terminal, or one it waits for, rather than
// connecting to the socket and closing it without a terminal (the shim
// waiting on it then reads EOF) while the output goes to its own stdout.
func TestExecConsoleSocketNeedsTerminal(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)

	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no terminal", []string{"exec", "--detach", "--console-socket", sock, e.id, "echo", "no-tty"},
			"cannot use console socket if runc will not detach or allocate tty"},
		{"not detached", []string{"exec", "--tty", "--console-socket", sock, e.id, "echo", "attached"},
			"cannot use console socket if runc will not detach or allocate tty"},
		{"terminal without socket", []string{"exec", "--detach", "--tty", e.id, "echo", "lost-tty"},
			"cannot allocate tty if runc will detach without setting console socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.rt(tc.args...)
			if err == nil || !strings.Contains(e.lastError(), tc.want) {
				t.Errorf("%s: err = %v, log %q; want %q", strings.Join(tc.args, " "), err, e.lastError(), tc.want)
			}
			if strings.TrimSpace(out) != "" {
				t.Errorf("the refused exec ran: output %q", out)
			}
		})
	}
	// Nothing connected to the socket.
	if err := l.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Error("a refused exec connected to the console socket")
	}
}
