package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network/bridge"
	"github.com/hostnet-dev/hostnet/shim/network/cni"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
	"github.com/hostnet-dev/hostnet/spec"
)

// cniTimeout bounds the plugins' DEL when the caller's deadline is later
// or absent.
const cniTimeout = 2 * time.Minute

// prepareCNI is bridge mode delegated to the CNI plugins of
// network.cni_conflist: the namespace is pinned in the bundle as for the
// built-in bridge, the plugins' ADD runs against it, and the spec joins it.
// The record DEL needs is saved before anything changes, so that Teardown
// undoes a half-done attach too; on failure Prepare does that itself.
func prepareCNI(ctx context.Context, r Request, s *specs.Spec, ports []spec.PortMapping, res *Result) (retErr error) {
	nsPath := r.Bundle.NetNS()
	a, err := cni.New(r.Bundle, r.Config.CNIConfList, r.Config.CNIBinDir, cniContainerID(r), nsPath, ports)
	if err != nil {
		return invalid(err)
	}
	if err := a.Save(); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			if err := teardownCNI(context.WithoutCancel(ctx), r.Bundle); err != nil {
				retErr = fmt.Errorf("%w; undoing the attach also failed: %v", retErr, err) //nolint:errorlint // one %w: errgrpc sends the client every wrapped error
			}
		}
	}()
	if err := netns.Create(nsPath); err != nil {
		return err
	}
	// The plugins configure their interface; lo is the runtime's, as
	// containerd's CRI (go-cni's loopback network) and Podman bring it up.
	if err := bridge.LoopbackUp(nsPath); err != nil {
		return err
	}
	addr, err := a.Add(ctx)
	if err != nil {
		return err
	}
	res.Why += "; CNI network " + a.Name()

	return joinBridgeNetNS(r, s, nsPath, []netip.Addr{addr}, res)
}

// cniContainerID is the container id the plugins see. It must be unique on
// the host, as host-local leases and portmap chains are keyed by it: like
// attachmentKey it adds a hash of the bundle path to namespace and id, in
// the characters CNI allows.
func cniContainerID(r Request) string {
	key := attachmentKey(r) // namespace/id@hash
	return strings.NewReplacer("/", "-", "@", "-").Replace(key)
}

// teardownCNI runs DEL for the CNI network the bundle's record names, if
// any, then removes the namespace, the files and the record, the record
// last so that a failure can be retried.
func teardownCNI(ctx context.Context, b bundle.Bundle) error {
	a, err := cni.Read(b)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not a CNI network, or already torn down
	}
	if err != nil {
		return err
	}
	var errs []error
	if err := a.Del(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := netns.Remove(a.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := b.RemoveHostFiles(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("failed to tear down CNI network of %s: %w", a.ContainerID, errors.Join(errs...))
	}
	return a.Remove()
}

// Check runs CNI's CHECK for a container on a CNI network, before its
// process starts: the last moment a network broken since create (a
// plugin's rules flushed, a lease lost) can fail the container rather than
// leave it running unreachable. Later checks would need somewhere to report
// to; kubelet's probes and the client's own checks are that. Other
// containers have nothing to check.
func Check(ctx context.Context, b bundle.Bundle) error {
	a, err := cni.Read(b)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.Check(ctx)
}
