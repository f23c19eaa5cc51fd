package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/spec"
)

// ctrCNIExtension is the container extension `ctr run --cni` records
// (ctr's commands.CtrCniMetadataExtension), {"EnableCni":true}. ctr runs
// CNI itself, between task create and start, in /proc/<pid>/ns/net: the
// spec carries no sign of it, the container record does.
const ctrCNIExtension = "ctr.cni-containerd.metadata"

// grpcAddressEnv is where containerd gives a shim its gRPC address; the
// hostnet shim's server process inherits it from `shim start`.
const grpcAddressEnv = "GRPC_ADDRESS"

// ctrRunsCNI reports whether the container was made by `ctr run --cni`,
// asking containerd for its record. Without containerd's address (the
// shim not started by containerd) it reports false.
func ctrRunsCNI(ctx context.Context, namespace, id string) (bool, error) {
	address := os.Getenv(grpcAddressEnv)
	if address == "" {
		return false, nil
	}
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, fmt.Errorf("failed to connect to containerd at %s: %w", address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, namespace), 10*time.Second)
	defer cancel()
	resp, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		err = errgrpc.ToNative(err)
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("failed to read container %s from containerd, to tell whether ctr runs CNI for it: %w", id, err)
	}
	ext, ok := resp.GetContainer().GetExtensions()[ctrCNIExtension]
	if !ok {
		return false, nil
	}
	var meta struct{ EnableCni bool }
	if err := json.Unmarshal(ext.GetValue(), &meta); err != nil {
		// Recorded by ctr, so meant for CNI: do not guess otherwise.
		return true, nil
	}
	return meta.EnableCni, nil
}

// ctrCNIMatters reports whether ctr's mark can change the resolved mode:
// only a spec asking for a new network namespace from a client that is
// neither CRI nor nerdctl, in a mode other than none, is looked up.
func ctrCNIMatters(s *specs.Spec, res spec.Resolution) bool {
	ns, ok := spec.NetworkNamespace(s)
	if res.Mode == spec.ModeNone || res.Nerdctl || !ok || ns.Path != "" {
		return false
	}
	_, cri := s.Annotations[spec.CRIContainerTypeAnnotation]
	return !cri
}

// ctrCNILookup is ctrRunsCNI running beside the rest of the create: a new
// gRPC connection to containerd and a round trip, a few ms that would
// otherwise add to every create of a plain `ctr run`.
type ctrCNILookup struct {
	namespace, id string
	cancel        context.CancelFunc
	done          chan struct{}
	// prefetched is set for Prefetch's lookup, made before the create
	// and so without the create's options; asked is set once it asked.
	prefetched, asked bool
	cni               bool
	err               error
}

func newCtrCNILookup(ctx context.Context, namespace, id string) (*ctrCNILookup, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &ctrCNILookup{namespace: namespace, id: id, cancel: cancel, done: make(chan struct{})}, ctx
}

func startCtrCNILookup(ctx context.Context, namespace, id string) *ctrCNILookup {
	l, ctx := newCtrCNILookup(ctx, namespace, id)
	l.asked = true
	go func() {
		defer close(l.done)
		l.cni, l.err = ctrRunsCNI(ctx, namespace, id)
	}()
	return l
}

// answer waits for the lookup's answer. A prefetched lookup that did not
// ask, or failed, is asked again now: the error a create reports is its
// own, not one from before it began.
func (l *ctrCNILookup) answer(ctx context.Context) (bool, error) {
	<-l.done
	if l.prefetched && (!l.asked || l.err != nil) {
		return ctrRunsCNI(ctx, l.namespace, l.id)
	}
	return l.cni, l.err
}

// stop ends the lookup, answered or not, and waits for it to be gone.
func (l *ctrCNILookup) stop() {
	l.cancel()
	<-l.done
}

// prefetched holds Prefetch's lookup until the create it was made for
// takes it (takePrefetched).
var prefetched struct {
	sync.Mutex
	lookup *ctrCNILookup
}

// Prefetch starts the lookup of ctr's --cni mark for the container
// namespace/id whose bundle is b, if its spec asks for what the mark can
// change: the shim server calls it as it starts, for the container it was
// started for, and containerd sends that container's create a few ms
// later. The create's Begin takes the lookup over; had it nothing to ask
// or failed, the create asks again itself. Nothing else changes: the
// create still resolves the mode from its own spec and options.
func Prefetch(ctx context.Context, namespace, id string, b bundle.Bundle) {
	l, ctx := newCtrCNILookup(ctx, namespace, id)
	l.prefetched = true
	prefetched.Lock()
	prefetched.lookup = l
	prefetched.Unlock()
	go func() {
		defer close(l.done)
		defer l.cancel()
		s, err := b.ReadSpecHead()
		if err != nil {
			return
		}
		// The configured default mode comes with the create's options:
		// host stands in for it, which asks wherever any mode but none
		// would.
		res, err := spec.ResolveMode(s, spec.ModeHost)
		if err != nil || !ctrCNIMatters(s, res) {
			return
		}
		l.asked = true
		l.cni, l.err = ctrRunsCNI(ctx, namespace, id)
	}()
}

// takePrefetched returns Prefetch's lookup if it was made for
// namespace/id, once.
func takePrefetched(namespace, id string) *ctrCNILookup {
	prefetched.Lock()
	defer prefetched.Unlock()
	l := prefetched.lookup
	if l == nil || l.namespace != namespace || l.id != id {
		return nil
	}
	prefetched.lookup = nil
	return l
}

// resolveCtrCNI gives way to `ctr run --cni`, which runs CNI in the
// container's network namespace once the task is created: in host mode
// that is the host's (an eth0 with a CNI address left on the host), in
// bridge mode hostnet's own. As with nerdctl, the client's network is
// honoured by default (mode none) and an annotation asking for another
// mode is refused. cni is ctr's mark (ctrRunsCNI), asked for where
// ctrCNIMatters.
func resolveCtrCNI(cni bool, res *spec.Resolution) error {
	if !cni {
		return nil
	}
	if res.Explicit {
		return invalid(fmt.Errorf("annotation %s=%s conflicts with ctr run --cni: ctr runs CNI in the container's network namespace, which in %s mode would be %s: "+
			"drop --cni for hostnet's %s network", spec.NetworkAnnotation, res.Mode, res.Mode,
			map[spec.NetworkMode]string{spec.ModeHost: "the host's", spec.ModeBridge: "hostnet's bridge namespace"}[res.Mode], res.Mode))
	}
	res.Mode, res.Why = spec.ModeNone, "ctr run --cni (ctr sets up the container's network namespace)"
	return nil
}
