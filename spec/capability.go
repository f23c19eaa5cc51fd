package spec

import (
	"fmt"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Capability names in a spec are "CAP_" and the kernel's name in upper case
// (CAP_NET_ADMIN). runc matches them exactly: "CAP_net_admin" is not
// CAP_NET_ADMIN to runc, which runs the container without it and warns.
// hostnet's shim and runtime read names through this one parser, so a
// check in the shim (hardened mode) and what the runtime grants can never
// disagree about which capability a name means.

var capsByName = sync.OnceValue(func() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m[CapabilityName(c)] = c
	}
	return m
})

// CapabilityName is the canonical spelling of c, e.g. "CAP_NET_ADMIN".
func CapabilityName(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

// ParseCapability returns the capability a canonical name stands for. Any
// other spelling, and any name the capability library does not know, is
// not a capability.
func ParseCapability(name string) (capability.Cap, bool) {
	c, ok := capsByName()[name]
	return c, ok
}

// KnownCapabilities lists every canonical name, in capability number order
// as `runc features` prints them.
func KnownCapabilities() []string {
	list := capability.ListKnown()
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = CapabilityName(c)
	}
	return out
}

// CapabilitySet is one of a process's capability lists, by its spec name.
type CapabilitySet struct {
	Name  string // "bounding", "effective", ...
	Names *[]string
}

// CapabilitySets lists the five sets of c, in the spec's order.
func CapabilitySets(c *specs.LinuxCapabilities) []CapabilitySet {
	return []CapabilitySet{
		{"bounding", &c.Bounding}, {"effective", &c.Effective}, {"permitted", &c.Permitted},
		{"inheritable", &c.Inheritable}, {"ambient", &c.Ambient},
	}
}

// CheckCapabilityNames refuses capability names that are not spelled the
// way runtimes read them: "CAP_" and upper-case letters, digits and
// underscores. runc would run such a container without the capability,
// and a runtime that folds case would grant it; neither is what the
// caller meant, so the shim says so instead. A well-formed name this
// library does not know (a capability newer than it) is left to the
// runtime, which skips it with a warning as runc does.
func CheckCapabilityNames(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	for _, set := range CapabilitySets(c) {
		for _, name := range *set.Names {
			if wellFormedCapability(name) {
				continue
			}
			where := fmt.Sprintf("capability %q in process.capabilities.%s", name, set.Name)
			upper := strings.ToUpper(name)
			if !strings.HasPrefix(upper, "CAP_") {
				upper = "CAP_" + upper
			}
			if known, ok := ParseCapability(upper); ok {
				return fmt.Errorf("%s is not a capability name: names are case-sensitive, this one is spelled %q", where, CapabilityName(known))
			}
			return fmt.Errorf("%s is not a capability name: want CAP_ followed by upper-case letters, digits and underscores", where)
		}
	}
	return nil
}

func wellFormedCapability(name string) bool {
	rest, ok := strings.CutPrefix(name, "CAP_")
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}
