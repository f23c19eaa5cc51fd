package spec

import (
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseCapability(t *testing.T) {
	for name, want := range map[string]capability.Cap{
		"CAP_NET_ADMIN": capability.CAP_NET_ADMIN, "CAP_CHOWN": capability.CAP_CHOWN,
		"CAP_CHECKPOINT_RESTORE": capability.CAP_CHECKPOINT_RESTORE,
	} {
		if c, ok := ParseCapability(name); !ok || c != want {
			t.Errorf("ParseCapability(%q) = %v, %v; want %v", name, c, ok, want)
		}
	}
	// runc reads names exactly; so do we.
	for _, name := range []string{"CAP_net_admin", "CAP_Net_Raw", "cap_net_admin", "NET_ADMIN", "CAP_NET_ADMIN ", "", "CAP_", "CAP_BOGUS"} {
		if c, ok := ParseCapability(name); ok {
			t.Errorf("ParseCapability(%q) = %v, want no capability", name, c)
		}
	}
	for _, name := range KnownCapabilities() {
		c, ok := ParseCapability(name)
		if !ok || CapabilityName(c) != name {
			t.Errorf("known capability %q does not round-trip (%v, %v)", name, c, ok)
		}
	}
	if got := KnownCapabilities(); len(got) != len(capability.ListKnown()) || got[0] != "CAP_CHOWN" {
		t.Errorf("KnownCapabilities() = %v", got)
	}
}

func TestCheckCapabilityNames(t *testing.T) {
	ok := &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_SOME_FUTURE_ONE"}, Ambient: []string{"CAP_NET_BIND_SERVICE"}}
	if err := CheckCapabilityNames(ok); err != nil {
		t.Errorf("well-formed names refused: %v", err)
	}
	if err := CheckCapabilityNames(nil); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"CAP_net_admin", `capability "CAP_net_admin" in process.capabilities.permitted is not a capability name: names are case-sensitive, this one is spelled "CAP_NET_ADMIN"`},
		{"net_raw", `spelled "CAP_NET_RAW"`},
		{"CAP_NET-ADMIN", "want CAP_ followed by upper-case letters, digits and underscores"},
		{"CAP_", "want CAP_"},
		{"", "want CAP_"},
	} {
		c := &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Permitted: []string{tc.name}}
		if err := CheckCapabilityNames(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
