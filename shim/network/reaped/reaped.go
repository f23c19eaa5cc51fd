// Package reaped connects the commands the shim starts to its reaper:
// go-runc's runtime calls, CNI plugins and iptables alike.
//
// The shim reaps every child it has (wait4(-1) on SIGCHLD, containerd's
// pkg/sys/reaper), in its task service and in `shim delete` alike: a
// command waited for with os/exec alone races it, and when the reaper wins
// the command's Wait fails with ECHILD and its status is lost (measured:
// "waitid: no child processes" from an iptables that had succeeded).
package reaped

import (
	"fmt"
	"os/exec"
	"sync/atomic"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"
)

var inUse atomic.Bool

// UseReaper makes go-runc and Run wait through m, whose reap loop the
// caller runs. The shim does, in its server and in `shim delete`; other
// programs and tests leave it unset and get os/exec's own wait.
func UseReaper(m *reaper.Monitor) {
	runc.Monitor = monitor{m}
	inUse.Store(true)
}

// monitor is the reaper as go-runc's process monitor. The reaper waits for
// every child itself, so the exec.Cmd.Wait it then calls fails with ECHILD
// and leaves the pidfd Go holds for each started process open until the
// garbage collector finds the Cmd: every runtime call kept one. Releasing
// the process once its exit is known closes it.
type monitor struct{ *reaper.Monitor }

func (m monitor) Wait(c *exec.Cmd, exits chan runc.Exit) (int, error) {
	status, err := m.Monitor.Wait(c, exits)
	if c.Process != nil {
		_ = c.Process.Release()
	}
	return status, err
}

// Run runs cmd to its end; a non-zero exit is an error.
func Run(cmd *exec.Cmd) error {
	if !inUse.Load() {
		return cmd.Run()
	}
	exits, err := runc.Monitor.Start(cmd)
	if err != nil {
		return err
	}
	status, err := runc.Monitor.Wait(cmd, exits)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("exit status %d", status)
	}
	return nil
}
