package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/hostnet-dev/hostnet/spec"
)

// FuzzParse: the TOML document comes from containerd's runtime options.
// Whatever Parse accepts is a config the shim can use as it is: a valid
// mode, an IPv4 subnet with room, a gateway that is a host address in it,
// an MTU in range and a name Linux takes for an interface. Encoding it and
// parsing that again gives the same config.
func FuzzParse(f *testing.F) {
	f.Add("")
	f.Add("[network]\ndefault_mode = \"bridge\"\nhardened = true\n[network.bridge]\nname = \"hn1\"\nsubnet = \"10.90.3.7/24\"\nmtu = 1400\n[runtime]\nbinary = \"/usr/sbin/runc\"\n")
	f.Add("[network.bridge]\nsubnet = \"fd00::/64\"\n")
	f.Add("[network.bridge]\nsubnet = \"\"\nsubnet6 = \"fd00:1::/64\"\ngateway_mode6 = \"routed\"\n")
	f.Add("[network.bridge]\nsubnet6 = \"fd00:1::/127\"\ngateway6 = \"fd00:1::\"\n")
	f.Add("[network.bridge]\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.0\"\n")
	f.Add("[network.bridge]\nname = \"..\"\n")
	f.Add("[network]\nbogus = 1\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse([]byte(doc))
		if err != nil {
			return
		}
		n := c.Network
		b := n.Bridge
		switch {
		case !isMode(n.DefaultMode):
			t.Fatalf("accepted default_mode %q", n.DefaultMode)
		case !b.Subnet.IsValid() && !b.Subnet6.IsValid():
			t.Fatalf("accepted a bridge without a subnet")
		case b.Subnet.IsValid() && (!b.Subnet.Addr().Is4() || b.Subnet.Bits() > 30 || b.Subnet != b.Subnet.Masked()):
			t.Fatalf("accepted subnet %s", b.Subnet)
		case b.Subnet.IsValid() && (!b.Subnet.Contains(b.Gateway) || b.Gateway == b.Subnet.Addr() || b.Gateway == lastAddr(b.Subnet)):
			t.Fatalf("accepted gateway %s for subnet %s", b.Gateway, b.Subnet)
		case !b.Subnet.IsValid() && b.Gateway.IsValid():
			t.Fatalf("accepted gateway %s without a subnet", b.Gateway)
		case b.Subnet6.IsValid() && (!b.Subnet6.Addr().Is6() || b.Subnet6.Addr().Is4In6() || b.Subnet6.Bits() > 126 || b.Subnet6 != b.Subnet6.Masked() ||
			!b.Subnet6.Addr().IsGlobalUnicast() && !b.Subnet6.Addr().IsPrivate()):
			t.Fatalf("accepted subnet6 %s", b.Subnet6)
		case b.Subnet6.IsValid() && (!b.Subnet6.Contains(b.Gateway6) || b.Gateway6 == b.Subnet6.Addr()):
			t.Fatalf("accepted gateway6 %s for subnet6 %s", b.Gateway6, b.Subnet6)
		case !b.Subnet6.IsValid() && b.Gateway6.IsValid():
			t.Fatalf("accepted gateway6 %s without a subnet6", b.Gateway6)
		case b.GatewayMode6 != GatewayModeNAT && b.GatewayMode6 != GatewayModeRouted:
			t.Fatalf("accepted gateway_mode6 %q", b.GatewayMode6)
		case b.MTU < 68 || b.MTU > 65535:
			t.Fatalf("accepted mtu %d", b.MTU)
		case validInterfaceName(b.Name) != nil:
			t.Fatalf("accepted bridge name %q", b.Name)
		}
		again := c
		if err := again.Validate(); err != nil || again != c {
			t.Fatalf("an accepted config does not validate to itself: %+v, %v", again, err)
		}
		data, err := toml.Marshal(c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		back, err := Parse(data)
		if err != nil || back != c {
			t.Fatalf("config %+v encodes as\n%s\nwhich parses as %+v, %v", c, data, back, err)
		}
	})
}

func isMode(m spec.NetworkMode) bool {
	_, err := spec.ParseNetworkMode(string(m))
	return err == nil && !strings.ContainsAny(string(m), " \t\n")
}

// lastAddr is the highest address of an IPv4 prefix, its broadcast
// address, computed apart from the check under test.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
