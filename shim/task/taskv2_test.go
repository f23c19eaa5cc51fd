package task

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestTaskV2MatchesV3: registerTaskV2 decodes v2 requests as v3 ones and
// answers v2 calls with v3 responses. That is sound only while every v2
// message has the v3 message's fields (number, name, kind, cardinality,
// type) and the services have the same methods, which this checks.
func TestTaskV2MatchesV3(t *testing.T) {
	v2 := taskv2.File_runtime_task_v2_shim_proto
	v3 := taskAPI.File_runtime_task_v3_shim_proto
	local := func(name protoreflect.FullName) string {
		// Both packages' own messages compare by their name alone.
		for _, pkg := range []protoreflect.FullName{v2.Package(), v3.Package()} {
			if rest, ok := strings.CutPrefix(string(name), string(pkg)+"."); ok {
				return "task." + rest
			}
		}
		return string(name)
	}
	msgs2, msgs3 := v2.Messages(), v3.Messages()
	if msgs2.Len() != msgs3.Len() {
		t.Errorf("v2 has %d messages, v3 %d", msgs2.Len(), msgs3.Len())
	}
	for i := range msgs2.Len() {
		m2 := msgs2.Get(i)
		m3 := msgs3.ByName(m2.Name())
		if m3 == nil {
			t.Errorf("v2 message %s has no v3 counterpart", m2.Name())
			continue
		}
		f2, f3 := m2.Fields(), m3.Fields()
		if f2.Len() != f3.Len() {
			t.Errorf("%s: %d fields in v2, %d in v3", m2.Name(), f2.Len(), f3.Len())
		}
		for j := range f2.Len() {
			a := f2.Get(j)
			b := f3.ByNumber(a.Number())
			if b == nil {
				t.Errorf("%s.%s (%d): not in v3", m2.Name(), a.Name(), a.Number())
				continue
			}
			if a.Name() != b.Name() || a.Kind() != b.Kind() || a.Cardinality() != b.Cardinality() || a.IsMap() != b.IsMap() {
				t.Errorf("%s field %d: v2 %s %v %v, v3 %s %v %v", m2.Name(), a.Number(), a.Name(), a.Cardinality(), a.Kind(), b.Name(), b.Cardinality(), b.Kind())
			}
			if a.Message() != nil && local(a.Message().FullName()) != local(b.Message().FullName()) {
				t.Errorf("%s.%s: v2 type %s, v3 %s", m2.Name(), a.Name(), a.Message().FullName(), b.Message().FullName())
			}
			if a.Enum() != nil && a.Enum().FullName() != b.Enum().FullName() {
				t.Errorf("%s.%s: v2 enum %s, v3 %s", m2.Name(), a.Name(), a.Enum().FullName(), b.Enum().FullName())
			}
		}
	}
	s2, s3 := v2.Services().Get(0), v3.Services().Get(0)
	if s2.Methods().Len() != s3.Methods().Len() {
		t.Errorf("v2 service has %d methods, v3 %d", s2.Methods().Len(), s3.Methods().Len())
	}
	for i := range s2.Methods().Len() {
		m2 := s2.Methods().Get(i)
		m3 := s3.Methods().ByName(m2.Name())
		if m3 == nil {
			t.Errorf("v2 method %s is not in v3", m2.Name())
			continue
		}
		if local(m2.Input().FullName()) != local(m3.Input().FullName()) || local(m2.Output().FullName()) != local(m3.Output().FullName()) {
			t.Errorf("%s: v2 %s -> %s, v3 %s -> %s", m2.Name(), m2.Input().FullName(), m2.Output().FullName(), m3.Input().FullName(), m3.Output().FullName())
		}
	}
	if got := string(s2.FullName()); got != taskV2Service {
		t.Errorf("v2 service is %s, registered as %s", got, taskV2Service)
	}
}

// TestTaskV2ServesTaskService: through a real ttrpc connection, every
// method of task API v2 reaches the one task service with the request's
// fields, its responses decode as v2 ones, and errors pass through; v3 is
// still served.
func TestTaskV2ServesTaskService(t *testing.T) {
	exited := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	rec := &recordingService{replies: map[string]proto.Message{
		"State": &taskAPI.StateResponse{ID: "c1", Bundle: "/b", Pid: 42, Status: apitask.Status_STOPPED, ExitStatus: 3,
			Terminal: true, ExitedAt: timestamppb.New(exited), ExecID: "e1"},
		"Wait":    &taskAPI.WaitResponse{ExitStatus: 7, ExitedAt: timestamppb.New(exited)},
		"Connect": &taskAPI.ConnectResponse{ShimPid: 11, TaskPid: 12, Version: "v"},
		"Create":  &taskAPI.CreateTaskResponse{Pid: 13},
		"Delete":  &taskAPI.DeleteResponse{Pid: 14, ExitStatus: 15, ExitedAt: timestamppb.New(exited)},
		"Pids":    &taskAPI.PidsResponse{Processes: []*apitask.ProcessInfo{{Pid: 16}}},
	}}
	client := serveTask(t, rec)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// Every method, its request built from the v2 descriptor with its id
	// set to the method's name.
	svc := taskv2.File_runtime_task_v2_shim_proto.Services().Get(0)
	for i := range svc.Methods().Len() {
		m := svc.Methods().Get(i)
		reqType, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
		if err != nil {
			t.Fatal(err)
		}
		respType, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
		if err != nil {
			t.Fatal(err)
		}
		req := reqType.New()
		idField := req.Descriptor().Fields().ByName("id")
		if idField == nil {
			t.Fatalf("%s has no id", m.Input().FullName())
		}
		req.Set(idField, protoreflect.ValueOfString(string(m.Name())))
		if err := client.Call(ctx, taskV2Service, string(m.Name()), req.Interface(), respType.New().Interface()); err != nil {
			t.Errorf("v2 %s: %v", m.Name(), err)
		}
	}
	if got, want := rec.calls(), svc.Methods().Len(); len(got) != want {
		t.Errorf("the service saw %d calls, want %d: %v", len(got), want, got)
	}
	for _, c := range rec.calls() {
		if c.method != c.id {
			t.Errorf("%s reached the service as %s", c.id, c.method)
		}
	}

	v2 := taskv2.NewTTRPCTaskClient(client)
	st, err := v2.State(ctx, &taskv2.StateRequest{ID: "c1", ExecID: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "c1" || st.Bundle != "/b" || st.Pid != 42 || st.Status != apitask.Status_STOPPED || st.ExitStatus != 3 ||
		!st.Terminal || !st.ExitedAt.AsTime().Equal(exited) || st.ExecID != "e1" {
		t.Errorf("v2 State = %v", st)
	}
	if w, err := v2.Wait(ctx, &taskv2.WaitRequest{ID: "c1"}); err != nil || w.ExitStatus != 7 || !w.ExitedAt.AsTime().Equal(exited) {
		t.Errorf("v2 Wait = %v, %v", w, err)
	}
	if p, err := v2.Pids(ctx, &taskv2.PidsRequest{ID: "c1"}); err != nil || len(p.Processes) != 1 || p.Processes[0].Pid != 16 {
		t.Errorf("v2 Pids = %v, %v", p, err)
	}
	rec.fail = "Kill"
	if _, err := v2.Kill(ctx, &taskv2.KillRequest{ID: "c1", Signal: 9}); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("v2 Kill = %v, want the service's error", err)
	}
	if c, err := taskAPI.NewTTRPCTaskClient(client).Connect(ctx, &taskAPI.ConnectRequest{ID: "c1"}); err != nil || c.TaskPid != 12 {
		t.Errorf("v3 Connect = %v, %v", c, err)
	}
}

// serveTask serves svc through taskServer on a unix socket and returns a
// client connected to it.
func serveTask(t *testing.T, svc *recordingService) *ttrpc.Client {
	t.Helper()
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := (taskServer{svc: svc}).RegisterTTRPC(server); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(context.Background(), l)
	t.Cleanup(func() { server.Close() })
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	t.Cleanup(func() { client.Close() })
	return client
}

// recordingService is a task service that records each call and answers
// with the reply set for the method, or an empty one.
type recordingService struct {
	replies map[string]proto.Message
	fail    string // a method that fails

	mu   sync.Mutex
	seen []call
}

type call struct{ method, id string }

func (s *recordingService) calls() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.seen...)
}

func reply[R proto.Message](s *recordingService, method, id string) (R, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, call{method, id})
	var zero R
	if method == s.fail {
		return zero, errNoSuchProcess
	}
	if r, ok := s.replies[method]; ok {
		return r.(R), nil
	}
	return zero.ProtoReflect().Type().New().Interface().(R), nil
}

var errNoSuchProcess = ttrpcError("no such process")

type ttrpcError string

func (e ttrpcError) Error() string { return string(e) }

func (s *recordingService) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

func (s *recordingService) State(_ context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	return reply[*taskAPI.StateResponse](s, "State", r.ID)
}
func (s *recordingService) Create(_ context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	return reply[*taskAPI.CreateTaskResponse](s, "Create", r.ID)
}
func (s *recordingService) Start(_ context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	return reply[*taskAPI.StartResponse](s, "Start", r.ID)
}
func (s *recordingService) Delete(_ context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	return reply[*taskAPI.DeleteResponse](s, "Delete", r.ID)
}
func (s *recordingService) Pids(_ context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	return reply[*taskAPI.PidsResponse](s, "Pids", r.ID)
}
func (s *recordingService) Pause(_ context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Pause", r.ID)
}
func (s *recordingService) Resume(_ context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Resume", r.ID)
}
func (s *recordingService) Checkpoint(_ context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Checkpoint", r.ID)
}
func (s *recordingService) Kill(_ context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Kill", r.ID)
}
func (s *recordingService) Exec(_ context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Exec", r.ID)
}
func (s *recordingService) ResizePty(_ context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "ResizePty", r.ID)
}
func (s *recordingService) CloseIO(_ context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "CloseIO", r.ID)
}
func (s *recordingService) Update(_ context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Update", r.ID)
}
func (s *recordingService) Wait(_ context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	return reply[*taskAPI.WaitResponse](s, "Wait", r.ID)
}
func (s *recordingService) Stats(_ context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	return reply[*taskAPI.StatsResponse](s, "Stats", r.ID)
}
func (s *recordingService) Connect(_ context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	return reply[*taskAPI.ConnectResponse](s, "Connect", r.ID)
}
func (s *recordingService) Shutdown(_ context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	return reply[*emptypb.Empty](s, "Shutdown", r.ID)
}
