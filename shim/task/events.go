package task

import (
	"context"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/process"
)

// event is a task event queued for containerd, and what to do once it has
// been published.
type event struct {
	evt       any
	published func()
	// flushed, instead of an event, is closed once every event queued
	// before it has been published.
	flushed chan struct{}
}

// send queues evt; events are published one at a time in the order sent.
func (s *service) send(evt any) {
	s.sendThen(evt, nil)
}

// sendThen queues evt and calls published once it has gone out (or been
// dropped at shutdown).
func (s *service) sendThen(evt any, published func()) {
	select {
	case s.events <- event{evt: evt, published: published}:
	case <-s.shutdown.Done():
		if published != nil {
			published()
		}
	}
}

func (s *service) forward(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	defer s.publisher.Close()
	publish := func(e event) {
		if e.flushed != nil {
			close(e.flushed)
			return
		}
		if err := s.publisher.Publish(ctx, runtime.GetTopic(e.evt), e.evt); err != nil {
			log.G(ctx).WithError(err).Error("failed to publish event")
		}
		if e.published != nil {
			e.published()
		}
	}
	for {
		select {
		case e := <-s.events:
			publish(e)
		case <-s.shutdown.Done():
			for {
				select {
				case e := <-s.events:
					publish(e)
				default:
					return
				}
			}
		}
	}
}

// flush waits until every event queued so far has been published, or ctx
// ends. The shim exits as soon as its shutdown callbacks return, and
// containerd shuts it down right after the Delete that queued the
// container's TaskDelete: without this, a shim slow to publish (a loaded
// machine) exited with TaskDelete still queued, and it was never seen.
func (s *service) flush(ctx context.Context) error {
	flushed := make(chan struct{})
	select {
	case s.events <- event{flushed: flushed}:
	case <-ctx.Done():
		return nil
	}
	select {
	case <-flushed:
	case <-ctx.Done():
		log.G(ctx).Warn("shim stops with task events not published yet")
	}
	return nil
}

// exitWatch buffers exits while a process's pid is not known yet, or while
// its start is being published, so that its TaskExit cannot overtake that.
type exitWatch struct {
	exits []runc.Exit
}

type tracked struct {
	c *container
	p *process.Process
}

// watchExits starts buffering every exit. The given pids stop being tracked
// until handed back with track.
func (s *service) watchExits(untrack ...int) *exitWatch {
	s.exitMu.Lock()
	defer s.exitMu.Unlock()
	for _, pid := range untrack {
		delete(s.running, pid)
	}
	return s.watchExitsLocked()
}

// watchExitsLocked is watchExits for a caller holding exitMu.
func (s *service) watchExitsLocked() *exitWatch {
	w := &exitWatch{}
	s.watchers[w] = struct{}{}
	return w
}

// unwatch drops w; the process it was for never ran.
func (s *service) unwatch(w *exitWatch) {
	s.exitMu.Lock()
	defer s.exitMu.Unlock()
	delete(s.watchers, w)
}

// track ends w and handles p's exit from now on; if w saw it already, now.
func (s *service) track(w *exitWatch, c *container, p *process.Process) {
	pid := p.Pid()
	s.exitMu.Lock()
	delete(s.watchers, w)
	var exit *runc.Exit
	for i := range w.exits {
		if w.exits[i].Pid == pid {
			exit = &w.exits[i]
		}
	}
	if exit == nil && pid != 0 {
		s.running[pid] = tracked{c: c, p: p}
	}
	s.exitMu.Unlock()
	if exit != nil {
		s.handleExit(c, p, *exit)
	}
}

// processExits receives every child the shim reaps: container processes,
// re-parented to the shim as subreaper, and the runtime's own invocations,
// which are not tracked and ignored here.
func (s *service) processExits() {
	for e := range s.exits {
		s.exitMu.Lock()
		for w := range s.watchers {
			w.exits = append(w.exits, e)
		}
		t, ok := s.running[e.Pid]
		delete(s.running, e.Pid)
		s.exitMu.Unlock()
		if ok {
			s.handleExit(t.c, t.p, e)
		}
	}
}

func (s *service) handleExit(c *container, p *process.Process, e runc.Exit) {
	if pio := p.IO(); pio != nil {
		pio.Shutdown()
	}
	if p == c.init {
		s.exitMu.Lock()
		c.initExited = true
		s.exitMu.Unlock()
		go s.handleInitExit(c, e)
		return
	}
	s.publishExit(c, p, e)
	s.execEnded(c)
}

// execEnded counts down an exec that has exited, its TaskExit queued, or
// that failed to start without a process.
func (s *service) execEnded(c *container) {
	s.exitMu.Lock()
	defer s.exitMu.Unlock()
	c.execsLive--
	if c.execsLive == 0 && c.execsDone != nil {
		close(c.execsDone)
		c.execsDone = nil
	}
}

// handleInitExit publishes the init's exit after those of all the execs, as
// containerd expects the init's TaskExit to be the container's last. It
// waits for the execs still starting too: one may yet get a process, which
// startExec then kills.
func (s *service) handleInitExit(c *container, e runc.Exit) {
	s.exitMu.Lock()
	live := c.execsLive
	var done chan struct{}
	if live > 0 {
		done = make(chan struct{})
		c.execsDone = done
	}
	s.exitMu.Unlock()

	if c.killAllOnExit || live > 0 {
		// With its own pid namespace the kernel has killed the rest already;
		// without, they would outlive the container.
		if err := c.rt.Kill(s.context, c.id, int(unix.SIGKILL), true); err != nil {
			log.G(s.context).WithError(err).WithField("id", c.id).Debug("failed to kill remaining processes")
		}
	}
	if done != nil {
		<-done
	}
	if c.oom != nil {
		c.oom.flush()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now()
	}
	// Recorded for `shim delete`, should the shim die before containerd
	// has the exit.
	if err := c.bundle.WriteExit(e); err != nil {
		log.G(s.context).WithError(err).WithField("id", c.id).Warn("failed to record exit status")
	}
	s.publishExit(c, c.init, e)
}

// publishExit sends TaskExit; waiters are released once it is out, so that a
// client returning from Wait has seen it.
func (s *service) publishExit(c *container, p *process.Process, e runc.Exit) {
	at := e.Timestamp
	if at.IsZero() {
		at = time.Now()
	}
	s.sendThen(&eventstypes.TaskExit{
		ContainerID: c.id,
		ID:          p.ID,
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(at),
	}, func() { p.SetExited(e.Status, at) })
}
