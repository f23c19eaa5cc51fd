// Package network prepares a bundle for the container's network mode before
// the OCI runtime sees it. Host networking is a spec rewrite. Bridge
// networking creates a network namespace pinned in the bundle, attaches it
// to a Linux bridge with an address and NAT rules, and points the spec at
// it; Teardown undoes that from the state recorded in the bundle.
package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/internal/hostns"
	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/spec"
)

// Request names the container whose network is being prepared.
type Request struct {
	Bundle    bundle.Bundle
	ID        string
	Namespace string
	Config    config.Network
}

// Result is what Prepare did.
type Result struct {
	Mode spec.NetworkMode
	// Why says where the mode came from, for the shim's log.
	Why string
	// Warnings are for the shim's log, like Docker's published-ports one.
	Warnings []string
	// Hardened is set when the spec was hardened (spec.Harden): processes
	// exec'd into the container must be too.
	Hardened bool
	// SpecChanged is set when Prepare rewrote the spec, which the caller
	// then saves. A spec left alone is not written back: re-encoded, it
	// would lose the fields this build's runtime-spec does not know.
	SpecChanged bool
}

// Prepare rewrites s, the container's OCI spec, for the network mode the
// container asks for: its annotation, else the configured default. Bad
// input is an InvalidArgument error that names the annotation or setting at
// fault; s may then be half rewritten and must not be used.
func Prepare(ctx context.Context, r Request, s *specs.Spec) (Result, error) {
	p := Begin(ctx, r, s)
	defer p.Close()
	return p.Prepare(ctx)
}

// Pending is a Prepare begun: the mode resolved from the spec and, where
// the mode depends on it, containerd being asked for ctr's --cni mark
// (ctrcni.go), a new gRPC connection and a round trip, unless the shim
// server asked already as it started (Prefetch). The task service mounts
// the root file system meanwhile, which Prepare's checks need mounted; the
// mark is awaited only there.
type Pending struct {
	r        Request
	s        *specs.Spec
	resolved spec.Resolution
	// err is the resolution's; Prepare returns it, so that a create
	// fails with the same error at the same step as without Begin.
	err    error
	ctrCNI *ctrCNILookup // nil where the mark cannot matter
}

// Begin starts preparing s for its network mode: Prepare finishes, Close
// abandons what runs still, and one of them must be called. s must not
// change in between.
func Begin(ctx context.Context, r Request, s *specs.Spec) *Pending {
	p := &Pending{r: r, s: s}
	p.resolved, p.err = spec.ResolveMode(s, r.Config.DefaultMode)
	if p.err == nil && ctrCNIMatters(s, p.resolved) {
		if p.ctrCNI = takePrefetched(r.Namespace, r.ID); p.ctrCNI == nil {
			p.ctrCNI = startCtrCNILookup(ctx, r.Namespace, r.ID)
		}
	}
	return p
}

// Close ends a lookup still running, as after a create that failed before
// Prepare. It may be called after Prepare, and more than once.
func (p *Pending) Close() {
	if p.ctrCNI != nil {
		p.ctrCNI.stop()
	}
}

// Prepare is the package's Prepare, on Begin's request and spec.
func (p *Pending) Prepare(ctx context.Context) (Result, error) {
	r, s, resolved := p.r, p.s, p.resolved
	if p.err != nil {
		return Result{}, invalid(p.err)
	}
	if p.ctrCNI != nil {
		cni, err := p.ctrCNI.answer(ctx)
		if err != nil {
			return Result{}, err
		}
		if err := resolveCtrCNI(cni, &resolved); err != nil {
			return Result{}, err
		}
	}
	mode, explicit := resolved.Mode, resolved.Explicit
	if mode == spec.ModeBridge && resolved.Nerdctl {
		if err := refuseNerdctlPorts(s); err != nil {
			return Result{}, err
		}
	}
	published, err := spec.PublishedPorts(s)
	if err != nil {
		return Result{}, invalid(err)
	}
	ports := spec.Mappings(published)
	if s.Process != nil {
		// In every mode: a misspelt name means something else to each
		// runtime (runc drops it, others fold case).
		if err := spec.CheckCapabilityNames(s.Process.Capabilities); err != nil {
			return Result{}, invalid(err)
		}
	}
	res := Result{Mode: mode, Why: resolved.Why}
	switch mode {
	case spec.ModeHost:
		if err := prepareHost(s, r.Bundle.Path, explicit, ports, r.Config, &res); err != nil {
			return Result{}, err
		}
	case spec.ModeNone:
		// The spec's namespaces are left exactly as the client made them.
		return res, nil
	case spec.ModeBridge:
		if err := prepareBridge(ctx, r, s, explicit, published, &res); err != nil {
			return Result{}, err
		}
	default:
		// Not NotImplemented: containerd would retry the create with an
		// older task API and leak this shim.
		return Result{}, fmt.Errorf("network mode %s is not handled by this shim: %w", mode, errdefs.ErrFailedPrecondition)
	}
	return res, nil
}

// Teardown releases what Prepare set up outside the bundle b. It is
// idempotent and also runs from `shim delete` after the shim died: it works
// from the record Prepare left in the bundle, not from the shim's memory or
// configuration. ctx bounds the CNI plugins' DEL, as does cniTimeout.
func Teardown(ctx context.Context, b bundle.Bundle) error {
	// Bounded: a hung CNI plugin must not hold a delete forever, nor past
	// the caller's deadline. The record stays, so a later delete retries.
	ctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	return errors.Join(teardownCNI(ctx, b), teardownBridge(b))
}

// prepareHost shares the host's network stack the way `docker run
// --network host` does.
func prepareHost(s *specs.Spec, bundle string, explicit bool, ports []spec.PortMapping, cfg config.Network, res *Result) error {
	if !spec.ApplyHostNetwork(s, explicit) {
		if ns, joined := spec.NetworkNamespace(s); joined {
			// A pod's or another container's netns, by path: not ours to
			// change, nor to decorate with the host's files.
			// Unless it is the host's own: a hostNetwork pod's app
			// containers join its sandbox's by path. They act on the host's
			// network as a host mode container does, so hardened holds for
			// them too; a namespace that cannot be looked at is refused.
			if !cfg.Hardened {
				res.Why += "; joins network namespace " + ns.Path + ", left as it is"
				return nil
			}
			host, err := hostns.IsNetNS(ns.Path)
			if err != nil {
				return invalid(err)
			}
			if !host {
				res.Why += "; joins network namespace " + ns.Path + ", left as it is"
				return nil
			}
			res.Why += "; joins the host's network namespace " + ns.Path
			changed, err := spec.Harden(s)
			if err != nil {
				return invalid(err)
			}
			res.Hardened, res.SpecChanged = true, changed
			return nil
		}
	} else {
		res.SpecChanged = true
	}
	// Only what changed is written back: re-encoding config.json drops
	// fields this build's runtime-spec does not know.
	if dropped := spec.DropCRIDefaultSysctls(s); len(dropped) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("dropped containerd's default sysctls %s (CRI's enable_unprivileged_ports/icmp): "+
			"in host network mode the host's settings apply", strings.Join(dropped, ", ")))
		res.SpecChanged = true
	}
	if err := spec.CheckHostSysctls(s); err != nil {
		return invalid(err)
	}
	if cfg.Hardened {
		changed, err := spec.Harden(s)
		if err != nil {
			return invalid(err)
		}
		res.Hardened = true
		res.SpecChanged = res.SpecChanged || changed
	}
	if len(ports) > 0 {
		res.Warnings = append(res.Warnings, spec.PublishedPortsWarning)
		err := checkPortsFree(ports)
		if err == nil {
			err = checkPortsUnpublished(ports)
		}
		if err != nil {
			return taken(err, "a host network mode container binds the host's ports directly")
		}
	}
	if addHostFiles(s, bundle, spec.HostFiles, res) {
		res.SpecChanged = true
	}
	if hostname, err := os.Hostname(); err == nil && spec.SetHostHostname(s, hostname) {
		res.SpecChanged = true
	}
	return nil
}

// invalid marks bad input. One %w only: errgrpc sends every wrapped branch
// to the client, which would print each of them.
func invalid(err error) error {
	return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
}
