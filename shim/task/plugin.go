package task

import (
	"context"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network"
)

// Register adds the task service to the plugins pkg/shim loads when it
// serves, as task API v3 and v2 (taskv2.go); it must be called before
// shim.RunShim.
func Register() {
	registry.Register(&plugin.Registration{
		Type: plugins.TTRPCPlugin,
		ID:   "task",
		Requires: []plugin.Type{
			plugins.EventPlugin,
			plugins.InternalPlugin,
		},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pub, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			sd, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			svc, err := NewService(ic.Context, pub.(shim.Publisher), sd.(shutdown.Service))
			if err != nil {
				return nil, err
			}
			prefetchNetwork(ic.Context)
			return taskServer{svc: svc.(*service)}, nil
		},
	})
}

// prefetchNetwork has the network mode's question to containerd (ctr's
// --cni mark) asked for the container this server was started for, while
// containerd prepares that container's create (network.Prefetch). The
// server runs in that container's bundle, which containerd names after it
// (<state>/<runtime>/<namespace>/<id>): a wrong guess only means the
// create asks itself.
func prefetchNetwork(ctx context.Context) {
	ns, ok := namespaces.Namespace(ctx)
	dir, err := os.Getwd()
	if !ok || err != nil {
		return
	}
	network.Prefetch(ctx, ns, filepath.Base(dir), bundle.New(dir))
}
