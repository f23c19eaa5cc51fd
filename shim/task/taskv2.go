package task

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/ttrpc"
)

// taskV2Service is the ttrpc name of task API v2, the one containerd 1.7
// talks to every shim, and containerd 2.0 to 2.2 to a shim whose `start`
// printed a bare address (see shim/manager/legacy.go).
const taskV2Service = "containerd.task.v2.Task"

// registerTaskV2 serves svc, the task API v3 service, as task API v2 too.
// The two APIs are one .proto file under two package names: every v2
// message is a v3 message field for field, so a v2 request decodes into
// the v3 request type and the v3 response encodes as the v2 one
// (TestTaskV2MatchesV3 holds the APIs to that). The calls thus reach the
// one service, with no copy of it and no conversion.
func registerTaskV2(server *ttrpc.Server, svc taskAPI.TTRPCTaskService) {
	server.RegisterService(taskV2Service, &ttrpc.ServiceDesc{
		Methods: map[string]ttrpc.Method{
			"State":      unary(svc.State),
			"Create":     unary(svc.Create),
			"Start":      unary(svc.Start),
			"Delete":     unary(svc.Delete),
			"Pids":       unary(svc.Pids),
			"Pause":      unary(svc.Pause),
			"Resume":     unary(svc.Resume),
			"Checkpoint": unary(svc.Checkpoint),
			"Kill":       unary(svc.Kill),
			"Exec":       unary(svc.Exec),
			"ResizePty":  unary(svc.ResizePty),
			"CloseIO":    unary(svc.CloseIO),
			"Update":     unary(svc.Update),
			"Wait":       unary(svc.Wait),
			"Stats":      unary(svc.Stats),
			"Connect":    unary(svc.Connect),
			"Shutdown":   unary(svc.Shutdown),
		},
	})
}

// unary is a ttrpc method that decodes its request into a new Req and
// calls call with it, as the generated task API registration does.
func unary[Req any, PReq interface{ *Req }, Resp any](call func(context.Context, PReq) (Resp, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := PReq(new(Req))
		if err := unmarshal(req); err != nil {
			return nil, err
		}
		return call(ctx, req)
	}
}

// taskServer is what the task plugin hands pkg/shim: the service, served
// as task API v3 (by its own registration) and as v2.
type taskServer struct {
	svc interface {
		taskAPI.TTRPCTaskService
		shim.TTRPCService
	}
}

// RegisterTTRPC registers both task APIs on the shim's server.
func (s taskServer) RegisterTTRPC(server *ttrpc.Server) error {
	if err := s.svc.RegisterTTRPC(server); err != nil {
		return err
	}
	registerTaskV2(server, s.svc)
	return nil
}
