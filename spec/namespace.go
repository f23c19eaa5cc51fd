package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The spec's namespaces, as both binaries ask about them: the shim to
// choose a network mode and decide how an init's exit ends the container,
// the runtime to create, join and set up what the spec lists.

// Namespace returns the spec's entry for namespace type t, if it lists one.
func Namespace(s *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	if s.Linux == nil {
		return specs.LinuxNamespace{}, false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

// NetworkNamespace returns the spec's network namespace entry, if any.
func NetworkNamespace(s *specs.Spec) (specs.LinuxNamespace, bool) {
	return Namespace(s, specs.NetworkNamespace)
}

// HasNamespace reports whether the spec lists a namespace of type t, new or
// joined by path: the container does not share the host's.
func HasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	_, ok := Namespace(s, t)
	return ok
}

// NewNamespace reports whether the container gets a fresh namespace of type
// t, rather than sharing the host's or joining one by path.
func NewNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	ns, ok := Namespace(s, t)
	return ok && ns.Path == ""
}
