// Package task implements containerd's task API (v3) over ttrpc for hostnet
// containers: it rewrites each bundle for its network mode, has the OCI
// runtime create and run the container, tracks its processes and publishes
// their lifecycle events to containerd.
package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/containerd/console"
	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/network/reaped"
	"github.com/hostnet-dev/hostnet/shim/process"
	hostspec "github.com/hostnet-dev/hostnet/spec"
)

var (
	_     taskAPI.TTRPCTaskService = (*service)(nil)
	_     shim.TTRPCService        = (*service)(nil)
	empty                          = &ptypes.Empty{}
)

type service struct {
	context   context.Context
	publisher shim.Publisher
	shutdown  shutdown.Service
	epoller   *console.Epoller // shared by every process's terminal
	events    chan event
	exits     chan runc.Exit

	mu         sync.Mutex
	containers map[string]*container
	// creating reserves the ids being created, so that a second create of
	// one cannot run the runtime beside the first, fail, and tear down
	// what the first made.
	creating map[string]struct{}

	exitMu   sync.Mutex
	running  map[int]tracked
	watchers map[*exitWatch]struct{}
}

// NewService returns the task service. Exits reach it through the reaper,
// which the shim's signal loop drives; go-runc must use the same reaper so
// that each child is waited for exactly once.
func NewService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service) (taskAPI.TTRPCTaskService, error) {
	epoller, err := console.NewEpoller()
	if err != nil {
		return nil, fmt.Errorf("failed to create console epoller: %w", err)
	}
	reaped.UseReaper(reaper.Default)
	s := &service{
		context:    ctx,
		publisher:  publisher,
		shutdown:   sd,
		epoller:    epoller,
		events:     make(chan event, 128),
		exits:      reaper.Default.Subscribe(),
		containers: make(map[string]*container),
		creating:   make(map[string]struct{}),
		running:    make(map[int]tracked),
		watchers:   make(map[*exitWatch]struct{}),
	}
	go epoller.Wait()
	go s.processExits()
	go s.forward(ctx)
	sd.RegisterCallback(func(context.Context) error {
		reaper.Default.Unsubscribe(s.exits)
		return epoller.Close()
	})
	sd.RegisterCallback(s.flush)
	return s, nil
}

// RegisterTTRPC serves the task API on the shim's socket.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s not created", id)
	}
	return c, nil
}

func (s *service) getProcess(id, execID string) (*container, *process.Process, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.process(execID)
	if err != nil {
		return nil, nil, errgrpc.ToGRPC(err)
	}
	return c, p, nil
}

// Create a container and its init process, stopped before the user's program.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	s.mu.Lock()
	_, exists := s.containers[r.ID]
	_, reserved := s.creating[r.ID]
	if exists || reserved {
		s.mu.Unlock()
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "container %s", r.ID)
	}
	s.creating[r.ID] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.creating, r.ID)
		s.mu.Unlock()
	}()

	w := s.watchExits()
	c, err := createContainer(ctx, r, s.epoller)
	if err != nil {
		s.unwatch(w)
		if errdefs.IsNotImplemented(err) {
			// containerd takes NotImplemented from Create to mean that the
			// shim speaks an older task API: it retries with that, fails
			// again and loses track of the shim. Unsupported requests are
			// a failed precondition here.
			err = fmt.Errorf("%v: %w", err, errdefs.ErrFailedPrecondition) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
		}
		return nil, errgrpc.ToGRPC(err)
	}
	pid := c.init.Pid()
	if c.cgroup, err = loadCgroup(pid); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("metrics of container will not be reported")
	}
	// Watched from creation on, as a container can run out of memory
	// before it is started; reported once TaskCreate is out.
	if c.cgroup != nil {
		if c.oom, err = watchOOM(c.id, c.cgroup, s.send); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("OOM kills of container will not be reported")
		}
	}
	s.mu.Lock()
	delete(s.creating, r.ID)
	s.containers[r.ID] = c
	s.mu.Unlock()

	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO: &eventstypes.TaskIO{
			Stdin:    r.Stdin,
			Stdout:   r.Stdout,
			Stderr:   r.Stderr,
			Terminal: r.Terminal,
		},
		Pid: uint32(pid),
	})
	if c.oom != nil {
		c.oom.start()
	}
	s.track(w, c, c.init)
	return &taskAPI.CreateTaskResponse{Pid: uint32(pid)}, nil
}

// Start the init process's program, or a created exec.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		return s.startExec(ctx, c, r.ExecID)
	}
	p := c.init
	if st := p.State(); st != process.Created {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is %s", c.id, st)
	}
	if err := network.Check(ctx, c.bundle); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	// Hold back the init's exit until TaskStart is out.
	w := s.watchExits(p.Pid())
	defer s.track(w, c, p)
	if err := c.rt.Start(ctx, c.id); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := p.SetRunning(); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.send(&eventstypes.TaskStart{ContainerID: c.id, Pid: uint32(p.Pid())})
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

// startExec runs a created exec. Only the bookkeeping is done under exitMu:
// the runtime call and the stdio connection may take long (a loaded machine,
// a slow runtime, a client slow to open its fifos), and neither other execs
// nor the init's exit may wait for them more than they must.
func (s *service) startExec(ctx context.Context, c *container, execID string) (*taskAPI.StartResponse, error) {
	e, err := c.exec(execID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.exitMu.Lock()
	switch {
	case c.initExited:
		s.exitMu.Unlock()
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s init process is not running", c.id)
	case e.starting:
		s.exitMu.Unlock()
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "exec %s is being started", execID)
	}
	if st := e.State(); st != process.Created {
		s.exitMu.Unlock()
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "exec %s is %s", execID, st)
	}
	e.starting = true
	// Counted from now on: should the init exit while this exec starts, its
	// TaskExit waits for this one's fate.
	c.execsLive++
	// Exits are buffered from before the exec's pid exists, so that one
	// that comes before Start returns is not lost and its TaskExit cannot
	// overtake TaskExecStarted.
	w := s.watchExitsLocked()
	s.exitMu.Unlock()

	err = c.startExec(ctx, e, s.epoller)

	s.exitMu.Lock()
	e.starting = false
	initExited := c.initExited
	s.exitMu.Unlock()
	pid := e.Pid()
	if err != nil {
		if pid != 0 {
			// It runs without stdio: stop it; its exit ends its count.
			_ = unix.Kill(pid, unix.SIGKILL)
			s.track(w, c, e.Process)
		} else {
			s.unwatch(w)
			s.execEnded(c)
		}
		return nil, errgrpc.ToGRPC(err)
	}
	if initExited {
		// The init exited while the runtime started this exec, maybe after
		// its exit killed what the container held: the exec must not
		// outlive it, or the init's exit would wait for it forever.
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: execID, Pid: uint32(pid)})
	s.track(w, c, e.Process)
	return &taskAPI.StartResponse{Pid: uint32(pid)}, nil
}

// Delete the container once its init exited, or an exec.
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		if err := s.deleteExec(c, r.ExecID); err != nil {
			return nil, err
		}
		if pio := p.IO(); pio != nil {
			pio.Close(ioDrainTimeout)
		}
	} else {
		if err := c.deleteInit(ctx); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		s.mu.Lock()
		delete(s.containers, c.id)
		s.mu.Unlock()
	}
	status, at := p.ExitStatus()
	resp := &taskAPI.DeleteResponse{
		Pid:        uint32(p.Pid()),
		ExitStatus: uint32(status),
		ExitedAt:   protobuf.ToTimestamp(at),
	}
	if r.ExecID == "" {
		s.send(&eventstypes.TaskDelete{
			ContainerID: c.id,
			Pid:         resp.Pid,
			ExitStatus:  resp.ExitStatus,
			ExitedAt:    resp.ExitedAt,
		})
	}
	return resp, nil
}

// deleteExec forgets an exec that has exited or never started. Under exitMu,
// so that it cannot be started meanwhile: startExec sees it Deleted.
func (s *service) deleteExec(c *container, execID string) error {
	e, err := c.exec(execID)
	if err != nil {
		return errgrpc.ToGRPC(err)
	}
	s.exitMu.Lock()
	defer s.exitMu.Unlock()
	if e.starting {
		return errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "exec %s in container %s is being started", execID, c.id)
	}
	if err := e.SetDeleted(); err != nil {
		return errgrpc.ToGRPC(err)
	}
	c.mu.Lock()
	delete(c.execs, execID)
	c.mu.Unlock()
	return nil
}

// Exec records an extra process for the container; Start runs it.
func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var spec specs.Process
	if err := json.Unmarshal(r.Spec.GetValue(), &spec); err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec %s process spec: %v", r.ExecID, err)
	}
	if c.hardened {
		if _, err := hostspec.HardenCapabilities(spec.Capabilities); err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec %s: %v", r.ExecID, err)
		}
	}
	// The request's flag is what the client connects its stdio for; the
	// spec's may say otherwise (containerd passes both unchecked). As in
	// the runc shim, the request wins, so that the runtime makes a terminal
	// exactly when the shim waits for one on the console socket.
	spec.Terminal = r.Terminal
	c.mu.Lock()
	if _, ok := c.execs[r.ExecID]; ok {
		c.mu.Unlock()
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "exec %s in container %s", r.ExecID, c.id)
	}
	sio := stdio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	c.execs[r.ExecID] = &execProcess{Process: process.New(r.ExecID, sio), spec: spec}
	c.mu.Unlock()
	s.send(&eventstypes.TaskExecAdded{ContainerID: c.id, ExecID: r.ExecID})
	return empty, nil
}

// ResizePty resizes a process's terminal; an exec not started yet gets the
// size once its terminal exists.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*ptypes.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Resize(console.WinSize{Width: uint16(r.Width), Height: uint16(r.Height)}); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return empty, nil
}

// State reports a process's state as the shim last saw it.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	status, at := p.ExitStatus()
	return &taskAPI.StateResponse{
		ID:         p.ID,
		Bundle:     c.bundle.Path,
		Pid:        uint32(p.Pid()),
		Status:     taskStatus(p.State()),
		Stdin:      p.Stdio.Stdin,
		Stdout:     p.Stdio.Stdout,
		Stderr:     p.Stdio.Stderr,
		Terminal:   p.Stdio.Terminal,
		ExitStatus: uint32(status),
		ExitedAt:   protobuf.ToTimestamp(at),
		ExecID:     r.ExecID,
	}, nil
}

func taskStatus(st process.State) task.Status {
	switch st {
	case process.Created:
		return task.Status_CREATED
	case process.Running:
		return task.Status_RUNNING
	case process.Paused:
		return task.Status_PAUSED
	case process.Stopped, process.Deleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}

// Pause freezes the container.
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if st := c.init.State(); st != process.Running {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is %s", c.id, st)
	}
	if err := c.rt.Pause(ctx, c.id); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := c.init.SetPaused(true); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.send(&eventstypes.TaskPaused{ContainerID: c.id})
	return empty, nil
}

// Resume thaws a paused container.
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if st := c.init.State(); st != process.Paused {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is %s", c.id, st)
	}
	if err := c.rt.Resume(ctx, c.id); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := c.init.SetPaused(false); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.send(&eventstypes.TaskResumed{ContainerID: c.id})
	return empty, nil
}

// Kill signals the init process (every process with All) or an exec.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	switch p.State() {
	case process.Stopped, process.Deleted:
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "process %s already finished", p.ID)
	}
	if r.ExecID == "" {
		if err := c.rt.Kill(ctx, c.id, int(r.Signal), r.All); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		return empty, nil
	}
	pid := p.Pid()
	if pid == 0 {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "exec %s is not started", p.ID)
	}
	if err := unix.Kill(pid, unix.Signal(r.Signal)); err != nil {
		if err == unix.ESRCH {
			return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "process %s already finished", p.ID)
		}
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "failed to signal exec %s: %v", p.ID, err)
	}
	return empty, nil
}

// Pids lists the container's processes, naming those that are execs.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := c.rt.Ps(ctx, c.id)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	execIDs := make(map[int]string)
	c.mu.Lock()
	for id, e := range c.execs {
		if pid := e.Pid(); pid != 0 {
			execIDs[pid] = id
		}
	}
	c.mu.Unlock()
	processes := make([]*task.ProcessInfo, 0, len(pids))
	for _, pid := range pids {
		info := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execIDs[pid]; ok {
			a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id})
			if err != nil {
				return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "failed to marshal details of process %d: %v", pid, err)
			}
			info.Info = a
		}
		processes = append(processes, info)
	}
	return &taskAPI.PidsResponse{Processes: processes}, nil
}

// CloseIO closes a process's stdin.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*ptypes.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if pio := p.IO(); pio != nil && r.Stdin {
		if err := pio.CloseStdin(); err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrUnknown, "failed to close stdin of %s: %v", p.ID, err)
		}
	}
	return empty, nil
}

// Checkpoint is not supported. It is a failed precondition rather than
// NotImplemented, like every request the shim refuses, so that clients do
// not take it for an older task API.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*ptypes.Empty, error) {
	if _, err := s.get(r.ID); err != nil {
		return nil, err
	}
	return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "checkpointing container %s: checkpoint is not supported by the hostnet shim", r.ID)
}

// Update changes the container's resource limits.
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(r.Resources.GetValue(), &res); err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "update %s resources: %v", c.id, err)
	}
	if err := c.rt.Update(ctx, c.id, &res); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return empty, nil
}

// Wait blocks until the process exited and its TaskExit was published.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	status, at := p.ExitStatus()
	return &taskAPI.WaitResponse{ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// Connect reports the shim's and the container's pids.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	var pid int
	if c, err := s.get(r.ID); err == nil {
		pid = c.init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown stops the shim once it serves no container.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*ptypes.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.containers) > 0 || len(s.creating) > 0 {
		return empty, nil
	}
	s.shutdown.Shutdown()
	return empty, nil
}
