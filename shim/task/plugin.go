package task

import (
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
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
			return taskServer{svc: svc.(*service)}, nil
		},
	})
}
