// Command containerd-shim-hostnet-v1 is containerd's shim for the
// io.containerd.hostnet.v1 runtime.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"

	"github.com/hostnet-dev/hostnet/shim/manager"
	"github.com/hostnet-dev/hostnet/shim/network/reaped"
	"github.com/hostnet-dev/hostnet/shim/task"
)

func main() {
	// The shim reaps every child, in its server and in `shim delete`:
	// go-runc's calls and the network's commands are waited for through
	// its reaper, never by os/exec alone.
	reaped.UseReaper(reaper.Default)
	task.Register()
	manager.Run(context.Background(), manager.New(manager.RuntimeName))
}
