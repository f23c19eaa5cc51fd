package ociruntime

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// terminal is a pty whose slave is the controlling terminal and stdio of a
// runtime command, as a person's terminal is; the test types on the
// master and reads what the command prints there.
type terminal struct {
	t      *testing.T
	master console.Console
	slave  *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

func newTerminal(t *testing.T, rows, cols uint16) *terminal {
	t.Helper()
	master, name, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	if err := master.Resize(console.WinSize{Height: rows, Width: cols}); err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, master: master, slave: slave, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		slave.Close()
		master.Close()
	})
	return term
}

// start runs cmd in a session of its own with the terminal as its
// controlling terminal and stdio.
func (term *terminal) start(cmd *exec.Cmd) {
	term.t.Helper()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term.slave, term.slave, term.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		term.t.Fatal(err)
	}
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// waitFor waits until the terminal shows want, typing each time first if
// it is set.
func (term *terminal) waitFor(want string, typing string) {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(term.output(), want) {
		if time.Now().After(deadline) {
			term.t.Fatalf("the terminal never showed %q:\n%s", want, term.output())
		}
		if typing != "" {
			term.master.Write([]byte(typing))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (term *terminal) termios() *unix.Termios {
	term.t.Helper()
	tio, err := unix.IoctlGetTermios(int(term.slave.Fd()), unix.TCGETS)
	if err != nil {
		term.t.Fatal(err)
	}
	return tio
}

func cooked(tio *unix.Termios) bool { return tio.Lflag&unix.ICANON != 0 && tio.Lflag&unix.ECHO != 0 }

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
				t.Fatalf("%s was killed by %v", cmd.Args[0], ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v did not exit", cmd.Args)
	}
	return -1
}

// Issue 12 item 7: `run` in the foreground with process.terminal and no
// --console-socket (a `spec` made by the runtime, run by a person) gives
// the container a pty of hostnet-runc's own, copied to the caller's
// terminal, which is in raw mode meanwhile and restored after; the pty has
// the terminal's size and follows its resizes (SIGWINCH); the exit status
// is the container's. hostnet-runc failed: "process.terminal is set but no
// --console-socket was given". Passes with HOSTNET_RUNC=runc 1.5.2 too.
func TestRunTerminalWithoutConsoleSocket(t *testing.T) {
	e := newEnv(t, "sh", "-c", "tty; echo size $(stty size); echo ready; while read line; do [ \"$line\" = quit ] && exit 3; echo size $(stty size); done")
	e.spec.Process.Terminal = true
	e.writeSpec()
	term := newTerminal(t, 40, 100)
	before := term.termios()
	if !cooked(before) {
		t.Fatal("the test terminal does not start in cooked mode")
	}
	cmd := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "run", "--bundle", e.bundle, e.id)
	term.start(cmd)
	term.waitFor("ready", "")
	// runc sizes the pty once the container runs, which may print first:
	// each line typed prints the size again.
	term.waitFor("size 40 100", "\n")
	if !strings.Contains(term.output(), "/dev/pts/") {
		t.Errorf("the container has no pty:\n%s", term.output())
	}
	if cooked(term.termios()) {
		t.Error("the caller's terminal is not in raw mode while the container runs")
	}
	if err := term.master.Resize(console.WinSize{Height: 50, Width: 120}); err != nil {
		t.Fatal(err)
	}
	term.waitFor("size 50 120", "\n")
	term.master.Write([]byte("quit\n"))
	if code := exitCode(t, cmd); code != 3 {
		t.Errorf("run exited %d, want the container's 3 (log: %v)", code, e.logged("error"))
	}
	if after := term.termios(); !cooked(after) || after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("the caller's terminal was not restored: lflag %#x iflag %#x oflag %#x, was %#x %#x %#x",
			after.Lflag, after.Iflag, after.Oflag, before.Lflag, before.Iflag, before.Oflag)
	}
	e.assertGone()
}

// Issue 12 item 7: `exec -t` without --console-socket, the same way.
func TestExecTerminalWithoutConsoleSocket(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	term := newTerminal(t, 30, 90)
	cmd := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "exec", "-t", e.id,
		"sh", "-c", "tty; while read line; do [ \"$line\" = quit ] && exit 4; echo size $(stty size); done")
	term.start(cmd)
	term.waitFor("size 30 90", "\n")
	if !strings.Contains(term.output(), "/dev/pts/") {
		t.Errorf("the exec'd process has no pty:\n%s", term.output())
	}
	term.master.Write([]byte("quit\n"))
	if code := exitCode(t, cmd); code != 4 {
		t.Errorf("exec exited %d, want the process's 4 (log: %v)", code, e.logged("error"))
	}
	if !cooked(term.termios()) {
		t.Error("the caller's terminal was not restored")
	}
}

// Issue 12 item 7: in the foreground, a signal to the runtime goes to the
// container's process, as runc's signal handler forwards it, and the
// runtime exits with the status the process chose; hostnet-runc died of
// the signal and left the container running. The run case passes with
// runc 1.5.2 too; runc's foreground exec, on this host, did not exit within
// 60 s of the forwarded signal.
func TestForegroundForwardsSignals(t *testing.T) {
	script := "trap 'exit 9' TERM; trap 'exit 10' USR1; echo ready; sleep 1000 & wait"
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		want int
		cmd  func(e *env) *exec.Cmd
	}{
		{"run", unix.SIGTERM, 9, func(e *env) *exec.Cmd {
			e.spec.Process.Args = []string{"sh", "-c", script}
			e.writeSpec()
			return exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "run", "--bundle", e.bundle, e.id)
		}},
		{"exec", unix.SIGUSR1, 10, func(e *env) *exec.Cmd {
			if _, err := e.create(); err != nil {
				t.Fatal(err)
			}
			e.mustRT("start", e.id)
			return exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "exec", e.id, "sh", "-c", script)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "sleep", "1000")
			cmd := tc.cmd(e)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			// A session of its own: the signal comes from the test only.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "ready\n" {
				cmd.Process.Kill()
				t.Fatalf("read %q, %v", line, err)
			}
			go io.Copy(io.Discard, stdout)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if code := exitCode(t, cmd); code != tc.want {
				t.Errorf("%s exited %d after %v, want the process's %d", tc.name, code, tc.sig, tc.want)
			}
			if tc.name == "run" {
				e.assertGone()
			}
		})
	}
}
