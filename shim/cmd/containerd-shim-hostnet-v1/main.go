// Command containerd-shim-hostnet-v1 is containerd's shim for the
// io.containerd.hostnet.v1 runtime.
package main

import (
	"context"

	"github.com/hostnet-dev/hostnet/shim/manager"
	"github.com/hostnet-dev/hostnet/shim/task"
)

func main() {
	task.Register()
	manager.Run(context.Background(), manager.New(manager.RuntimeName))
}
