package network

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/spec"
)

// fakeContainers is containerd's containers service as far as ctrRunsCNI
// reads it: Get of a record whose extensions it holds, by namespace/id.
type fakeContainers struct {
	containersapi.UnimplementedContainersServer
	extensions map[string]string // namespace/id -> ctr's extension value
	err        error             // returned by every Get when set
	failFirst  int               // Gets answered Unavailable before the others
	// hold, when set, makes Get wait for it to close (or the caller to
	// give up) after announcing the request on received.
	hold     chan struct{}
	received chan struct{}
	canceled chan struct{}

	mu    sync.Mutex
	calls int
}

func (f *fakeContainers) Get(ctx context.Context, r *containersapi.GetContainerRequest) (*containersapi.GetContainerResponse, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.failFirst
	f.mu.Unlock()
	if fail {
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnavailable, "containerd is starting")
	}
	if f.hold != nil {
		f.received <- struct{}{}
		select {
		case <-f.hold:
		case <-ctx.Done():
			close(f.canceled)
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, errgrpc.ToGRPC(f.err)
	}
	ns, _ := namespaces.Namespace(ctx)
	v, ok := f.extensions[ns+"/"+r.GetID()]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %q", r.GetID())
	}
	c := &containersapi.Container{ID: r.GetID()}
	if v != "" {
		c.Extensions = map[string]*anypb.Any{ctrCNIExtension: {TypeUrl: ctrCNIExtension, Value: []byte(v)}}
	}
	return &containersapi.GetContainerResponse{Container: c}, nil
}

func (f *fakeContainers) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// serveContainers serves f where the shim finds containerd (GRPC_ADDRESS).
func serveContainers(t *testing.T, f *fakeContainers) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	containersapi.RegisterContainersServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	t.Setenv(grpcAddressEnv, sock)
}

func ctrCNIRequest(t *testing.T, id string, s *specs.Spec) Request {
	dir, _ := writeBundle(t, s)
	return Request{Bundle: bundle.New(dir), ID: id, Namespace: "ns", Config: config.Defaults().Network}
}

// TestCtrCNIMark: the mode follows ctr's --cni mark on the container record
// wherever it can matter, and containerd is not asked where it cannot.
func TestCtrCNIMark(t *testing.T) {
	f := &fakeContainers{extensions: map[string]string{
		"ns/cni":      `{"EnableCni":true}`,
		"ns/nocni":    `{"EnableCni":false}`,
		"ns/garbled":  `not json`,
		"ns/plain":    "",
		"other/plain": `{"EnableCni":true}`,
	}}
	serveContainers(t, f)
	cri := newSpec("", newNet)
	cri.Annotations = map[string]string{spec.CRIContainerTypeAnnotation: "container"}
	for _, tc := range []struct {
		name, id string
		s        *specs.Spec
		mode     spec.NetworkMode
		err      string // a substring of the InvalidArgument error
		asked    bool
	}{
		{name: "marked", id: "cni", s: newSpec("", newNet), mode: spec.ModeNone, asked: true},
		{name: "marked false", id: "nocni", s: newSpec("", newNet), mode: spec.ModeHost, asked: true},
		{name: "mark not ctr's JSON", id: "garbled", s: newSpec("", newNet), mode: spec.ModeNone, asked: true},
		{name: "no mark", id: "plain", s: newSpec("", newNet), mode: spec.ModeHost, asked: true},
		{name: "no record", id: "gone", s: newSpec("", newNet), mode: spec.ModeHost, asked: true},
		{name: "annotation conflicts", id: "cni", s: newSpec("host", newNet), err: "conflicts with ctr run --cni", asked: true},
		{name: "annotation none", id: "cni", s: newSpec("none", newNet), mode: spec.ModeNone},
		{name: "host netns", id: "cni", s: newSpec(""), mode: spec.ModeHost},
		{name: "joined netns", id: "cni", s: newSpec("", joinNet), mode: spec.ModeHost},
		{name: "CRI", id: "cni", s: cri, mode: spec.ModeHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.callCount()
			res, err := Prepare(context.Background(), ctrCNIRequest(t, tc.id, tc.s), tc.s)
			if asked := f.callCount() > before; asked != tc.asked {
				t.Errorf("containerd asked: %v, want %v", asked, tc.asked)
			}
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Prepare: %v, want InvalidArgument containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Mode != tc.mode {
				t.Errorf("mode %s (%s), want %s", res.Mode, res.Why, tc.mode)
			}
		})
	}
}

// TestCtrCNILookupError: a containerd that cannot answer fails the create
// with its error, as the user must see why.
func TestCtrCNILookupError(t *testing.T) {
	serveContainers(t, &fakeContainers{err: errors.New("the metadata store is on fire")})
	s := newSpec("", newNet)
	_, err := Prepare(context.Background(), ctrCNIRequest(t, "c", s), s)
	if err == nil || !strings.Contains(err.Error(), "to tell whether ctr runs CNI") || !strings.Contains(err.Error(), "on fire") {
		t.Fatalf("Prepare: %v, want containerd's error", err)
	}
}

// TestBeginLooksUpMeanwhile: Begin returns while containerd has not
// answered yet, so that the caller's work (the rootfs mount) and the round
// trip overlap; Prepare waits for the answer.
func TestBeginLooksUpMeanwhile(t *testing.T) {
	f := &fakeContainers{
		extensions: map[string]string{"ns/c": `{"EnableCni":true}`},
		hold:       make(chan struct{}), received: make(chan struct{}, 1), canceled: make(chan struct{}),
	}
	serveContainers(t, f)
	s := newSpec("", newNet)
	p := Begin(context.Background(), ctrCNIRequest(t, "c", s), s)
	defer p.Close()
	select {
	case <-f.received: // asked, not answered: Begin did not wait
	case <-time.After(time.Minute):
		t.Fatal("Begin did not ask containerd")
	}
	close(f.hold)
	res, err := p.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != spec.ModeNone {
		t.Errorf("mode %s (%s), want none", res.Mode, res.Why)
	}
}

// TestPendingCloseEndsLookup: a create that fails before Prepare (its rootfs
// mount) leaves no lookup behind.
func TestPendingCloseEndsLookup(t *testing.T) {
	f := &fakeContainers{hold: make(chan struct{}), received: make(chan struct{}, 1), canceled: make(chan struct{})}
	serveContainers(t, f)
	s := newSpec("", newNet)
	p := Begin(context.Background(), ctrCNIRequest(t, "c", s), s)
	<-f.received
	p.Close() // returns once the lookup is gone
	select {
	case <-f.canceled:
	case <-time.After(time.Minute):
		t.Fatal("the lookup was not canceled")
	}
	p.Close()
}

// dropPrefetch forgets Prefetch's lookup once the test ends.
func dropPrefetch(t *testing.T) {
	t.Cleanup(func() {
		prefetched.Lock()
		l := prefetched.lookup
		prefetched.lookup = nil
		prefetched.Unlock()
		if l != nil {
			l.stop()
		}
	})
}

// TestPrefetch: the shim server asks for the mark of the container it was
// started for before that container's create comes, and the create takes
// the answer instead of asking again.
func TestPrefetch(t *testing.T) {
	dropPrefetch(t)
	f := &fakeContainers{
		extensions: map[string]string{"ns/c": `{"EnableCni":true}`},
		hold:       make(chan struct{}), received: make(chan struct{}, 1), canceled: make(chan struct{}),
	}
	serveContainers(t, f)
	s := newSpec("", newNet)
	r := ctrCNIRequest(t, "c", s)
	Prefetch(context.Background(), "ns", "c", r.Bundle)
	<-f.received // asked, with no create yet
	close(f.hold)
	res, err := Prepare(context.Background(), r, s)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != spec.ModeNone {
		t.Errorf("mode %s (%s), want none", res.Mode, res.Why)
	}
	if n := f.callCount(); n != 1 {
		t.Errorf("containerd asked %d times, want once", n)
	}
}

// TestPrefetchNotUsed: the create asks itself where the server's lookup
// cannot stand for its own: it failed (the create reports its own answer,
// or its own error), it was for another container, or the spec it read
// asks for nothing the mark changes (then it asked nothing).
func TestPrefetchNotUsed(t *testing.T) {
	marked := map[string]string{"ns/c": `{"EnableCni":true}`, "ns/other": ""}
	t.Run("failed", func(t *testing.T) {
		dropPrefetch(t)
		f := &fakeContainers{extensions: marked, failFirst: 1}
		serveContainers(t, f)
		s := newSpec("", newNet)
		r := ctrCNIRequest(t, "c", s)
		Prefetch(context.Background(), "ns", "c", r.Bundle)
		res, err := Prepare(context.Background(), r, s)
		if err != nil || res.Mode != spec.ModeNone {
			t.Fatalf("Prepare: %s, %v; want mode none", res.Mode, err)
		}
		if n := f.callCount(); n != 2 {
			t.Errorf("containerd asked %d times, want twice", n)
		}
	})
	t.Run("failed twice", func(t *testing.T) {
		dropPrefetch(t)
		f := &fakeContainers{extensions: marked, failFirst: 2}
		serveContainers(t, f)
		s := newSpec("", newNet)
		r := ctrCNIRequest(t, "c", s)
		Prefetch(context.Background(), "ns", "c", r.Bundle)
		if _, err := Prepare(context.Background(), r, s); err == nil || !strings.Contains(err.Error(), "containerd is starting") {
			t.Fatalf("Prepare: %v, want containerd's error", err)
		}
	})
	t.Run("other container", func(t *testing.T) {
		dropPrefetch(t)
		f := &fakeContainers{extensions: marked}
		serveContainers(t, f)
		s := newSpec("", newNet)
		other := ctrCNIRequest(t, "other", s)
		Prefetch(context.Background(), "ns", "other", other.Bundle)
		res, err := Prepare(context.Background(), ctrCNIRequest(t, "c", s), s)
		if err != nil || res.Mode != spec.ModeNone {
			t.Fatalf("Prepare: %s, %v; want mode none", res.Mode, err)
		}
	})
	t.Run("nothing to ask", func(t *testing.T) {
		dropPrefetch(t)
		f := &fakeContainers{extensions: marked}
		serveContainers(t, f)
		cri := newSpec("", newNet)
		cri.Annotations = map[string]string{spec.CRIContainerTypeAnnotation: "sandbox"}
		r := ctrCNIRequest(t, "c", cri)
		Prefetch(context.Background(), "ns", "c", r.Bundle)
		l := takePrefetched("ns", "c")
		<-l.done
		if n := f.callCount(); n != 0 || l.asked {
			t.Errorf("containerd asked %d times for a CRI spec, want never", n)
		}
		// A create whose spec differs from the one the server read asks.
		s := newSpec("", newNet)
		Prefetch(context.Background(), "ns", "c", r.Bundle)
		res, err := Prepare(context.Background(), r, s)
		if err != nil || res.Mode != spec.ModeNone || f.callCount() != 1 {
			t.Fatalf("Prepare: %s, %v, %d asks; want mode none, asked once", res.Mode, err, f.callCount())
		}
	})
}
