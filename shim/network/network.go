// Package network prepares a bundle for the container's network mode before
// the OCI runtime sees it. Host networking is a spec rewrite; bridge
// networking will attach the container's namespace here once it exists.
package network

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/spec"
)

// DefaultMode applies to containers without the network annotation.
const DefaultMode = spec.ModeHost

const configFile = "config.json"

// Prepare rewrites <bundle>/config.json for the network mode the container
// asks for and returns that mode. The file is only rewritten if it changes.
func Prepare(bundle string) (spec.NetworkMode, error) {
	path := filepath.Join(bundle, configFile)
	s, err := readSpec(path)
	if err != nil {
		return "", err
	}
	mode, explicit, err := spec.ModeFor(s, DefaultMode)
	if err != nil {
		// One %w only: errgrpc sends every wrapped branch to the client,
		// which would print each of them.
		return "", fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	switch mode {
	case spec.ModeHost:
		if spec.ApplyHostNetwork(s, explicit) {
			if err := writeSpec(path, s); err != nil {
				return "", err
			}
		}
	case spec.ModeNone:
		// The spec's namespaces are left exactly as the client made them.
	case spec.ModeBridge:
		return "", fmt.Errorf("network mode %s is not implemented yet: %w", mode, errdefs.ErrNotImplemented)
	default:
		return "", fmt.Errorf("network mode %s is not handled by this shim: %w", mode, errdefs.ErrNotImplemented)
	}
	return mode, nil
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

// writeSpec replaces the spec atomically: the runtime must never read a
// half-written config.json, and a crash must leave the old one intact.
func writeSpec(path string, s *specs.Spec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("failed to encode OCI spec: %w", err)
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
