// Package spec rewrites OCI runtime specs for hostnet's network modes.
//
// Everything here is a pure function over *specs.Spec: the shim reads the
// bundle's config.json, applies the rewrite and writes it back before the
// runtime sees it, so the rules can be unit-tested without a container.
package spec

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// NetworkAnnotation selects a container's network mode.
const NetworkAnnotation = "hostnet.containerd.io/network"

// NetworkMode is how a container is attached to the network.
type NetworkMode string

const (
	// ModeHost shares the host's network namespace, like `docker run --network host`.
	ModeHost NetworkMode = "host"
	// ModeBridge gives the container its own netns attached to a Linux bridge.
	ModeBridge NetworkMode = "bridge"
	// ModeNone keeps the spec's own namespaces exactly as they are.
	ModeNone NetworkMode = "none"
)

// Modes lists every valid mode, in the order error messages show them.
var Modes = []NetworkMode{ModeHost, ModeBridge, ModeNone}

// ParseNetworkMode validates a mode name; the empty string is not a mode.
func ParseNetworkMode(s string) (NetworkMode, error) {
	m := NetworkMode(strings.TrimSpace(s))
	if slices.Contains(Modes, m) {
		return m, nil
	}
	return "", fmt.Errorf("invalid network mode %q: must be one of %s", s, joinModes())
}

// ModeFor returns the mode the spec's annotation asks for, or def when the
// annotation is absent. explicit reports whether the annotation was set.
func ModeFor(s *specs.Spec, def NetworkMode) (mode NetworkMode, explicit bool, err error) {
	v, ok := s.Annotations[NetworkAnnotation]
	if !ok {
		return def, false, nil
	}
	m, err := ParseNetworkMode(v)
	if err != nil {
		return "", true, fmt.Errorf("annotation %s: %w", NetworkAnnotation, err)
	}
	return m, true, nil
}

// ApplyHostNetwork makes the container share the host's network namespace.
//
// Only a request for a *new* network namespace is removed. An entry that joins
// an existing namespace by path (a CRI pod sandbox, `ctr run --with-ns`) is
// someone else's decision and is kept unless force is set, which is what an
// explicit "host" annotation means. It reports whether the spec changed.
func ApplyHostNetwork(s *specs.Spec, force bool) bool {
	if s.Linux == nil {
		return false
	}
	changed := false
	s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		drop := ns.Type == specs.NetworkNamespace && (ns.Path == "" || force)
		changed = changed || drop
		return drop
	})
	return changed
}

func joinModes() string {
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}
