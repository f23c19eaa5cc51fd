package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
)

// seccompAgent is where the listener of a profile's SCMP_ACT_NOTIFY rules
// goes (linux.seccomp.listenerPath), and the container state sent with it.
type seccompAgent struct {
	path     string
	metadata string
	state    specs.State
}

// newSeccompAgent is the agent of profile p for the container in state, or
// nil when p names none (seccomp.Compile refuses SCMP_ACT_NOTIFY rules
// without one).
func newSeccompAgent(p *specs.LinuxSeccomp, state specs.State) *seccompAgent {
	if p == nil || p.ListenerPath == "" {
		return nil
	}
	return &seccompAgent{path: p.ListenerPath, metadata: p.ListenerMetadata, state: state}
}

// takeSeccompListener answers the init's report of its listener, descriptor
// fd in process pid: it takes a copy with pidfd_getfd(2), lets the init go
// on, and sends the copy to the agent, in runc's order. The init need not
// wait for the agent: a notified system call waits for it in the kernel.
func takeSeccompListener(sync *os.File, agent *seccompAgent, pid, fd int) error {
	var listener *os.File
	err := errors.New("seccomp listenerPath is not set")
	if agent != nil {
		listener, err = pidGetFd(pid, fd)
	}
	var res initproc.SeccompFdResult
	if err != nil {
		res.Error = err.Error()
	}
	if eerr := json.NewEncoder(sync).Encode(res); eerr != nil && err == nil {
		err = fmt.Errorf("answer init's seccomp listener: %w", eerr)
	}
	if err != nil {
		if listener != nil {
			listener.Close()
		}
		return err
	}
	defer listener.Close()
	st := specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      pid,
		Metadata: agent.metadata,
		State:    agent.state,
	}
	return sendContainerProcessState(agent.path, &st, listener)
}

// pidGetFd copies descriptor fd of process pid, this process's unreaped
// child, so the pidfd cannot name another process.
func pidGetFd(pid, fd int) (*os.File, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("get seccomp listener of process %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	defer unix.Close(pidfd)
	n, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("get seccomp listener %d of process %d: %w", fd, pid, os.NewSyscallError("pidfd_getfd", err))
	}
	return os.NewFile(uintptr(n), "seccomp-listener"), nil
}

// sendContainerProcessState sends the state as JSON with the listener
// attached (SCM_RIGHTS) in one message to the unix socket at path, as the
// runtime-spec's "container process state" asks and runc does.
func sendContainerProcessState(path string, st *specs.ContainerProcessState, listener *os.File) error {
	msg, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("cannot marshal seccomp state: %w", err)
	}
	if err := initproc.DialSendFd(path, msg, int(listener.Fd())); err != nil {
		if initproc.IsDialError(err) {
			return fmt.Errorf("failed to connect with seccomp agent specified in the seccomp profile: %w", err)
		}
		return fmt.Errorf("cannot send seccomp fd to %s: %w", path, err)
	}
	return nil
}
