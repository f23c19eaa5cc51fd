// Package network prepares a bundle for the container's network mode before
// the OCI runtime sees it. Host networking is a spec rewrite. Bridge
// networking creates a network namespace pinned in the bundle, attaches it
// to a Linux bridge with an address and NAT rules, and points the spec at
// it; Teardown undoes that from the state recorded in the bundle.
package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/spec"
)

const configFile = "config.json"

// Request names the container whose network is being prepared.
type Request struct {
	Bundle    string
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
}

// Prepare rewrites <bundle>/config.json for the network mode the container
// asks for: its annotation, else the configured default. The file is only
// rewritten if it changes. Bad input is an InvalidArgument error that names
// the annotation or setting at fault.
func Prepare(ctx context.Context, r Request) (Result, error) {
	path := filepath.Join(r.Bundle, configFile)
	s, err := readSpec(path)
	if err != nil {
		return Result{}, err
	}
	resolved, err := spec.ResolveMode(s, r.Config.DefaultMode)
	if err != nil {
		return Result{}, invalid(err)
	}
	if err := resolveCtrCNI(ctx, r, s, &resolved); err != nil {
		return Result{}, err
	}
	mode, explicit := resolved.Mode, resolved.Explicit
	if mode == spec.ModeBridge && resolved.Nerdctl {
		if err := refuseNerdctlPorts(s); err != nil {
			return Result{}, err
		}
	}
	ports, err := spec.PortsFor(s)
	if err != nil {
		return Result{}, invalid(err)
	}
	if s.Process != nil {
		// In every mode: a misspelt name means something else to each
		// runtime (runc drops it, others fold case).
		if err := spec.CheckCapabilityNames(s.Process.Capabilities); err != nil {
			return Result{}, invalid(err)
		}
	}
	before, err := json.Marshal(s)
	if err != nil {
		return Result{}, fmt.Errorf("failed to encode OCI spec: %w", err)
	}
	res := Result{Mode: mode, Why: resolved.Why}
	switch mode {
	case spec.ModeHost:
		if err := prepareHost(s, r.Bundle, explicit, ports, r.Config, &res); err != nil {
			return Result{}, err
		}
	case spec.ModeNone:
		// The spec's namespaces are left exactly as the client made them.
		return res, nil
	case spec.ModeBridge:
		if err := prepareBridge(ctx, r, path, s, before, explicit, ports, &res); err != nil {
			return Result{}, err
		}
		return res, nil
	default:
		// Not NotImplemented: containerd would retry the create with an
		// older task API and leak this shim.
		return Result{}, fmt.Errorf("network mode %s is not handled by this shim: %w", mode, errdefs.ErrFailedPrecondition)
	}
	return res, writeSpecIfChanged(path, s, before)
}

// Teardown releases what Prepare set up outside the bundle. It is idempotent
// and also runs from `shim delete` after the shim died: it works from the
// state Prepare left in the bundle, not from the shim's memory or config.
func Teardown(ctx context.Context, r Request) error {
	return errors.Join(teardownCNI(ctx, r.Bundle), teardownBridge(r.Bundle))
}

// prepareHost shares the host's network stack the way `docker run
// --network host` does.
func prepareHost(s *specs.Spec, bundle string, explicit bool, ports []spec.PortMapping, cfg config.Network, res *Result) error {
	if !spec.ApplyHostNetwork(s, explicit) {
		if ns, joined := spec.NetworkNamespace(s); joined {
			// A pod's or another container's netns, by path: not ours to
			// change, nor to decorate with the host's files.
			res.Why += "; joins network namespace " + ns.Path + ", left as it is"
			return nil
		}
	}
	if dropped := spec.DropCRIDefaultSysctls(s); len(dropped) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("dropped containerd's default sysctls %s (CRI's enable_unprivileged_ports/icmp): "+
			"in host network mode the host's settings apply", strings.Join(dropped, ", ")))
	}
	if err := spec.CheckHostSysctls(s); err != nil {
		return invalid(err)
	}
	if cfg.Hardened {
		if err := spec.Harden(s); err != nil {
			return invalid(err)
		}
		res.Hardened = true
	}
	if len(ports) > 0 {
		res.Warnings = append(res.Warnings, spec.PublishedPortsWarning)
		err := checkPortsFree("/proc", ports)
		if err == nil {
			err = checkPortsUnpublished(ports)
		}
		if err != nil {
			return taken(err, "a host network mode container binds the host's ports directly")
		}
	}
	addHostFiles(s, bundle, spec.HostFiles, res)
	if hostname, err := os.Hostname(); err == nil {
		spec.SetHostHostname(s, hostname)
	}
	return nil
}

// invalid marks bad input. One %w only: errgrpc sends every wrapped branch
// to the client, which would print each of them.
func invalid(err error) error {
	return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
}

func readSpec(path string) (*specs.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read OCI spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("failed to parse OCI spec %s: %w", path, err)
	}
	return &s, nil
}

// writeSpecIfChanged replaces the spec atomically when it differs from
// before: the runtime must never read a half-written config.json, and a
// crash must leave the old one intact.
func writeSpecIfChanged(path string, s *specs.Spec, before []byte) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("failed to encode OCI spec: %w", err)
	}
	if bytes.Equal(data, before) {
		return nil
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := atomicfile.New(path, mode)
	if err != nil {
		return fmt.Errorf("failed to rewrite OCI spec %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Cancel()
		return fmt.Errorf("failed to rewrite OCI spec %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to rewrite OCI spec %s: %w", path, err)
	}
	return nil
}
