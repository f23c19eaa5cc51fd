package task

import (
	"os/exec"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"
)

// monitor is the shim's reaper as go-runc's process monitor. The reaper
// waits for every child itself, so the exec.Cmd.Wait it then calls fails
// with ECHILD and leaves the pidfd Go holds for each started process open
// until the garbage collector finds the Cmd: every create, start, delete
// and exec kept one. Releasing the process once its exit is known closes it.
type monitor struct{ *reaper.Monitor }

func (m monitor) Wait(c *exec.Cmd, exits chan runc.Exit) (int, error) {
	status, err := m.Monitor.Wait(c, exits)
	if c.Process != nil {
		_ = c.Process.Release()
	}
	return status, err
}
