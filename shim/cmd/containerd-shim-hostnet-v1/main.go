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
	// The shim's signal loop reaps every child: the network's commands
	// (CNI plugins, iptables) are waited for through it.
	reaped.UseReaper(reaper.Default)
	task.Register()
	manager.Run(context.Background(), manager.New(manager.RuntimeName))
}
