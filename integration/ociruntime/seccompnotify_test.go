package ociruntime

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Issue 12 item 14: SCMP_ACT_NOTIFY with the listener sent to the agent at
// linux.seccomp.listenerPath, as runc 1.5.2 does. Each test passes with
// HOSTNET_RUNC=runc 1.5.2 too.

// seccompAgent is a small seccomp agent: it takes the container process
// state and the listener from each connection and answers notifications,
// making mkdir(2) fail with ENOMEDIUM ("No medium found", which nothing
// else returns) and letting every other notified system call run.
type seccompAgent struct {
	t      *testing.T
	path   string
	states chan agentMessage
	done   chan struct{}
}

// agentMessage is one connection's message: the state and how many
// descriptors came with it.
type agentMessage struct {
	state specs.ContainerProcessState
	fds   int
	err   error
}

func startSeccompAgent(t *testing.T) *seccompAgent {
	t.Helper()
	a := &seccompAgent{t: t, path: filepath.Join(t.TempDir(), "agent.sock"), states: make(chan agentMessage, 8), done: make(chan struct{})}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(a.done)
		ln.Close()
	})
	go func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			a.states <- a.receive(conn)
		}
	}()
	return a
}

func (a *seccompAgent) receive(conn *net.UnixConn) agentMessage {
	defer conn.Close()
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return agentMessage{err: err}
	}
	var m agentMessage
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return agentMessage{err: err}
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return agentMessage{err: err}
		}
		fds = append(fds, got...)
	}
	m.fds = len(fds)
	for _, fd := range fds[min(1, len(fds)):] {
		unix.Close(fd)
	}
	if len(fds) > 0 {
		go a.answer(fds[0])
	}
	m.err = json.Unmarshal(buf[:n], &m.state)
	return m
}

// next is the state of the next connection. The runtime sends it before
// create or exec returns, but the agent's goroutine may still be reading
// it: wait a little. (A listener not delivered would leave the process
// blocked in its notified mkdir, which the tests' output shows.)
func (a *seccompAgent) next() specs.ContainerProcessState {
	a.t.Helper()
	select {
	case m := <-a.states:
		if m.err != nil {
			a.t.Fatalf("agent: %v", m.err)
		}
		if m.fds != 1 {
			a.t.Fatalf("agent got %d descriptors, want the listener alone", m.fds)
		}
		return m.state
	case <-time.After(10 * time.Second):
		a.t.Fatal("the runtime returned without sending the listener to the agent")
	}
	panic("unreachable")
}

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	nr    int32
	arch  uint32
	ip    uint64
	args  [6]uint64
}

type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

// answer serves the listener until every process using the filter is gone.
func (a *seccompAgent) answer(listener int) {
	defer unix.Close(listener)
	for {
		select {
		case <-a.done:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 200); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			if pfd[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
				return
			}
			continue
		}
		var n seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
			continue // the caller died meanwhile (ENOENT), or EINTR
		}
		r := seccompNotifResp{id: n.id}
		switch n.nr {
		case unix.SYS_MKDIRAT, sysMkdir():
			r.error = -int32(unix.ENOMEDIUM)
		default:
			r.flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
		}
		unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r)))
	}
}

// sysMkdir is mkdir(2)'s number where the architecture has it (x86_64:
// 83; arm64 only has mkdirat).
func sysMkdir() int32 {
	if runtime.GOARCH == "amd64" {
		return 83
	}
	return -1
}

// notifyProfile notifies the agent of the named system calls.
func notifyProfile(listener string, names ...string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     listener,
		ListenerMetadata: "bar",
		Architectures:    []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
		Syscalls:         []specs.LinuxSyscall{{Names: names, Action: specs.ActNotify}},
	}
}

// The init's listener reaches the agent during create, with the state
// runc sends; the agent then decides what mkdir in the container returns,
// with and without no_new_privs (the filter is loaded at different points).
func TestSeccompNotify(t *testing.T) {
	for _, nnp := range []bool{false, true} {
		t.Run(map[bool]string{false: "privileged", true: "noNewPrivileges"}[nnp], func(t *testing.T) {
			agent := startSeccompAgent(t)
			e := newEnv(t, "sh", "-c", "mkdir /tmp/notified 2>&1; echo status=$?")
			e.spec.Process.NoNewPrivileges = nnp
			e.spec.Linux.Seccomp = notifyProfile(agent.path, "mkdir", "mkdirat")
			out := e.createCapturing()
			st := agent.next()
			pid := e.state().Pid
			if st.Version != specs.Version || !slices.Equal(st.Fds, []string{specs.SeccompFdName}) || st.Metadata != "bar" || st.Pid != pid {
				t.Errorf("process state %+v, want ociVersion %s, fds [seccompFd], metadata bar, pid %d", st, specs.Version, pid)
			}
			if s := st.State; s.ID != e.id || s.Status != specs.StateCreating || s.Pid != pid || s.Bundle != e.bundle {
				t.Errorf("container state %+v, want id %s, status creating, pid %d, bundle %s", s, e.id, pid, e.bundle)
			}
			e.mustRT("start", e.id)
			e.waitStatus(specs.StateStopped)
			got, _ := os.ReadFile(out)
			if !strings.Contains(string(got), "No medium found") || !strings.Contains(string(got), "status=1") {
				t.Errorf("mkdir in the container was not answered by the agent: %q", got)
			}
			e.mustRT("delete", e.id)
			e.assertGone()
		})
	}
}

// An exec'd process gets a listener of its own, sent to the agent before
// exec returns, with its pid and the container's state.
func TestSeccompNotifyExec(t *testing.T) {
	agent := startSeccompAgent(t)
	e := newEnv(t, "sleep", "1000")
	e.spec.Linux.Seccomp = notifyProfile(agent.path, "mkdir", "mkdirat")
	if _, err := e.create(); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	agent.next()
	e.mustRT("start", e.id)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	out, err := e.rt("exec", "--pid-file", pidFile, e.id, "sh", "-c", "mkdir /tmp/exec 2>&1; echo status=$?")
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	st := agent.next()
	data, _ := os.ReadFile(pidFile)
	execPid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	init := e.state().Pid
	if st.Pid != execPid || execPid == 0 || !slices.Equal(st.Fds, []string{specs.SeccompFdName}) || st.Metadata != "bar" {
		t.Errorf("process state %+v, want pid %d (the exec's), fds [seccompFd], metadata bar", st, execPid)
	}
	if s := st.State; s.ID != e.id || s.Status != specs.StateRunning || s.Pid != init || s.Bundle != e.bundle {
		t.Errorf("container state %+v, want id %s, status running, pid %d (the init's), bundle %s", s, e.id, init, e.bundle)
	}
	if !strings.Contains(out, "No medium found") || !strings.Contains(out, "status=1") {
		t.Errorf("mkdir in the exec'd process was not answered by the agent: %q", out)
	}
}

// The system calls the runtime itself makes after loading the filter
// (execve among them) may be notified: the agent has the listener by then
// and lets them run, as runc's "important syscalls" test checks.
func TestSeccompNotifyRuntimeSyscalls(t *testing.T) {
	for _, nnp := range []bool{false, true} {
		t.Run(map[bool]string{false: "privileged", true: "noNewPrivileges"}[nnp], func(t *testing.T) {
			agent := startSeccompAgent(t)
			e := newEnv(t, "sh", "-c", "echo ran")
			e.spec.Process.NoNewPrivileges = nnp
			e.spec.Linux.Seccomp = notifyProfile(agent.path, "execve", "execveat", "openat", "open", "read", "close", "fcntl")
			out, err := e.runOutput()
			if err != nil || !strings.Contains(out, "ran") {
				t.Fatalf("run: %v: %q %s", err, out, e.lastError())
			}
			agent.next()
			e.assertGone()
		})
	}
}

// Profiles the runtime cannot serve are refused at create, leaving nothing
// behind: notify rules without a listenerPath, or on write(2), which the
// init needs before the agent has the listener, and an agent that is not
// there.
func TestSeccompNotifyRefused(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		profile    func(agent string) *specs.LinuxSeccomp
	}{
		{"no listenerPath", "listenerPath is not set", func(string) *specs.LinuxSeccomp { return notifyProfile("", "mkdir") }},
		{"write", "SCMP_ACT_NOTIFY cannot be used for the write syscall", func(a string) *specs.LinuxSeccomp { return notifyProfile(a, "write") }},
		{"no agent", "failed to connect with seccomp agent", func(a string) *specs.LinuxSeccomp { return notifyProfile(a+".missing", "mkdir") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := startSeccompAgent(t)
			e := newEnv(t, "true")
			e.spec.Linux.Seccomp = tc.profile(agent.path)
			if _, err := e.create(); err == nil {
				t.Fatal("create succeeded")
			}
			if msg := e.lastError(); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want one with %q", msg, tc.want)
			}
			e.assertGone()
		})
	}
}

// The listener does not leak: a startContainer hook, which runs in the
// container after the filter is loaded, sees only its stdio and the
// directory it lists, as runc's test checks.
func TestSeccompNotifyStartContainerHook(t *testing.T) {
	agent := startSeccompAgent(t)
	e := newEnv(t, "true")
	e.spec.Linux.Seccomp = notifyProfile(agent.path, "mkdir", "mkdirat")
	e.spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{
		Path: "/bin/sh",
		Args: []string{"sh", "-c", `n=$(ls /proc/self/fd | wc -l); [ "$n" -eq 4 ] || { echo "hook has $n fds:" $(ls -l /proc/self/fd) >&2; exit 1; }`},
	}}}
	if out, err := e.runOutput(); err != nil {
		t.Fatalf("run: %v: %q %s", err, out, e.lastError())
	}
	agent.next()
	e.assertGone()
}
