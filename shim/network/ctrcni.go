package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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

// resolveCtrCNI gives way to `ctr run --cni`, which runs CNI in the
// container's network namespace once the task is created: in host mode
// that is the host's (an eth0 with a CNI address left on the host), in
// bridge mode hostnet's own. As with nerdctl, the client's network is
// honoured by default (mode none) and an annotation asking for another
// mode is refused. Only a spec asking for a new network namespace from a
// client that is neither CRI nor nerdctl is looked up.
func resolveCtrCNI(ctx context.Context, r Request, s *specs.Spec, res *spec.Resolution) error {
	ns, ok := spec.NetworkNamespace(s)
	if res.Mode == spec.ModeNone || res.Nerdctl || !ok || ns.Path != "" {
		return nil
	}
	if _, cri := s.Annotations[spec.CRIContainerTypeAnnotation]; cri {
		return nil
	}
	cni, err := ctrRunsCNI(ctx, r.Namespace, r.ID)
	if err != nil || !cni {
		return err
	}
	if res.Explicit {
		return invalid(fmt.Errorf("annotation %s=%s conflicts with ctr run --cni: ctr runs CNI in the container's network namespace, which in %s mode would be %s: "+
			"drop --cni for hostnet's %s network", spec.NetworkAnnotation, res.Mode, res.Mode,
			map[spec.NetworkMode]string{spec.ModeHost: "the host's", spec.ModeBridge: "hostnet's bridge namespace"}[res.Mode], res.Mode))
	}
	res.Mode, res.Why = spec.ModeNone, "ctr run --cni (ctr sets up the container's network namespace)"
	return nil
}
