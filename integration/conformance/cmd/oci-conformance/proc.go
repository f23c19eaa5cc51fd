package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER

// Reaper makes the harness a child subreaper, so every process a test
// leaves behind (container inits the runtime daemonized, `unshare ... sleep`
// helpers, hooks) is re-parented to the harness instead of to pid 1, where
// cleanup can find it by pid. It reaps orphans as soon as they exit, as
// pid 1 or containerd's shim would, so runtimes see exited containers as
// stopped rather than as zombies.
//
// Once the reaper runs, os/exec must not be used: its Wait would race with
// wait4(-1). Start processes with Reaper.Run.
type Reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	orphans int
}

// NewReaper makes the calling process a subreaper and starts reaping.
func NewReaper() (*Reaper, error) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return nil, fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", errno)
	}
	r := &Reaper{waiting: map[int]chan syscall.WaitStatus{}}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		for {
			select {
			case <-sigc:
			case <-tick.C:
			}
			r.reap()
		}
	}()
	return r, nil
}

func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			ch <- ws
			delete(r.waiting, pid)
		} else {
			r.orphans++
		}
	}
}

// interrupted is closed on the first SIGINT or SIGTERM: the running test is
// killed, cleaned up after, and the run stops with a partial report.
var interrupted = make(chan struct{})

func handleInterrupts() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-c
		close(interrupted)
	}()
}

func isInterrupted() bool {
	select {
	case <-interrupted:
		return true
	default:
		return false
	}
}

// Proc is a process started by Run.
type Proc struct {
	Pid  int
	done chan syscall.WaitStatus
}

// Start starts argv in its own process group with stdout and stderr going to
// the given files (files, not pipes: a daemonized grandchild holding a pipe
// would keep a reader waiting forever).
func (r *Reaper) Start(argv []string, dir string, env []string, stdout, stderr *os.File) (*Proc, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []*os.File{devnull, stdout, stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[p.Pid] = ch
	pid := p.Pid
	_ = p.Release()
	return &Proc{Pid: pid, done: ch}, nil
}

// Wait waits for the process, killing its process group after timeout.
// It reports whether the timeout fired.
func (p *Proc) Wait(timeout time.Duration) (syscall.WaitStatus, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ws := <-p.done:
		return ws, false
	case <-t.C:
	case <-interrupted:
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	select {
	case ws := <-p.done:
		return ws, true
	case <-time.After(10 * time.Second):
		return 0, true
	}
}

// Run runs argv to completion and returns its combined output.
func (r *Reaper) Run(argv []string, env []string, timeout time.Duration) (string, int, error) {
	f, err := os.CreateTemp("", "oci-conformance-cmd-")
	if err != nil {
		return "", -1, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	p, err := r.Start(argv, "/", env, f, f)
	if err != nil {
		return "", -1, err
	}
	ws, timedOut := p.Wait(timeout)
	b, _ := os.ReadFile(f.Name())
	if timedOut {
		return string(b), -1, fmt.Errorf("%s: timed out after %s", strings.Join(argv, " "), timeout)
	}
	return string(b), exitCode(ws), nil
}

func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// procInfo is one /proc entry.
type procInfo struct {
	Pid, PPid, PGid int
	Comm, Cmdline   string
}

func (p procInfo) String() string {
	c := p.Cmdline
	if c == "" {
		c = "[" + p.Comm + "]"
	}
	if len(c) > 200 {
		c = c[:200] + "..."
	}
	return fmt.Sprintf("pid %d (ppid %d): %s", p.Pid, p.PPid, c)
}

func readProcs() map[int]procInfo {
	ents, _ := os.ReadDir("/proc")
	procs := make(map[int]procInfo, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 3 {
			continue
		}
		pi := procInfo{Pid: pid, Comm: s[open+1 : close]}
		pi.PPid, _ = strconv.Atoi(f[1])
		pi.PGid, _ = strconv.Atoi(f[2])
		if cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil {
			pi.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
		}
		procs[pid] = pi
	}
	return procs
}

// descendants returns every live process under the harness.
func descendants() []procInfo {
	procs := readProcs()
	children := map[int][]int{}
	for _, p := range procs {
		children[p.PPid] = append(children[p.PPid], p.Pid)
	}
	var out []procInfo
	queue := []int{os.Getpid()}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, procs[c])
			queue = append(queue, c)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
