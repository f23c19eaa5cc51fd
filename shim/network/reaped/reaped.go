// Package reaped runs the commands the network code starts (CNI plugins,
// iptables) so that their exit status survives the shim's reaper.
//
// The shim reaps every child it has (wait4(-1) on SIGCHLD, containerd's
// pkg/sys/reaper), in its task service and in `shim delete` alike: a
// command waited for with os/exec alone races it, and when the reaper wins
// the command's Wait fails with ECHILD and its status is lost (measured:
// "waitid: no child processes" from an iptables that had succeeded). Such
// commands must be waited for through the reaper, as go-runc's are.
package reaped

import (
	"fmt"
	"os/exec"
	"sync/atomic"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
)

var monitor atomic.Pointer[reaper.Monitor]

// UseReaper makes Run wait through m, whose reap loop the caller runs. The
// shim's main does; tests and other programs leave it unset and get
// os/exec's own wait.
func UseReaper(m *reaper.Monitor) { monitor.Store(m) }

// Run runs cmd to its end; a non-zero exit is an error.
func Run(cmd *exec.Cmd) error {
	m := monitor.Load()
	if m == nil {
		return cmd.Run()
	}
	exits, err := m.Start(cmd)
	if err != nil {
		return err
	}
	status, err := m.Wait(cmd, exits)
	// The reaper reaped it: release the pidfd Go holds for it.
	_ = cmd.Process.Release()
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("exit status %d", status)
	}
	return nil
}
