package inspect

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/network/fwd"
)

func TestOverlapping(t *testing.T) {
	nets := []Net{
		{netip.MustParsePrefix("0.0.0.0/0"), "default route"},
		{netip.MustParsePrefix("10.0.0.0/8"), "route via vpn"},
		{netip.MustParsePrefix("10.89.3.0/24"), "address of bridge other"},
		{netip.MustParsePrefix("10.90.0.0/16"), "neighbour"},
		{netip.MustParsePrefix("192.168.1.0/24"), "lan"},
		{netip.MustParsePrefix("fd00::/8"), "ipv6"},
	}
	var got []string
	for _, n := range Overlapping(netip.MustParsePrefix("10.89.0.0/16"), nets) {
		got = append(got, n.What)
	}
	if want := []string{"route via vpn", "address of bridge other"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Overlapping(10.89.0.0/16) = %q, want %q", got, want)
	}
	if got := Overlapping(netip.MustParsePrefix("172.31.0.0/16"), nets); len(got) != 0 {
		t.Errorf("Overlapping(172.31.0.0/16) = %v, want none (the default route does not count)", got)
	}
}

func TestParseCRIConfig(t *testing.T) {
	for _, tc := range []struct {
		name, doc  string
		version    int
		disabled   bool
		handlers   []string
		passes     bool // the hostnet handler passes the network annotation
		hasOptions bool
		systemd    bool // a runc runtime uses SystemdCgroup
	}{
		{name: "v3", version: 3, handlers: []string{"hostnet", "runc"}, passes: true, systemd: true, doc: `version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.hostnet]
  runtime_type = 'io.containerd.hostnet.v1'
  pod_annotations = ['hostnet.containerd.io/*']
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    SystemdCgroup = true
`},
		{name: "v2 without pod_annotations", version: 2, handlers: []string{"hostnet"}, doc: `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hostnet]
  runtime_type = "io.containerd.hostnet.v1"
`},
		{name: "v2 exact annotation, options", version: 2, handlers: []string{"hostnet"}, passes: true, hasOptions: true, doc: `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hostnet]
  runtime_type = "io.containerd.hostnet.v1"
  pod_annotations = ["hostnet.containerd.io/network"]
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hostnet.options]
    ConfigPath = "/etc/hostnet.toml"
`},
		{name: "v3, CRI disabled", version: 3, disabled: true, doc: "version = 3\ndisabled_plugins = ['io.containerd.cri.v1.runtime']\n"},
		{name: "v1", version: 1, handlers: []string{"hostnet"}, passes: true, doc: `[plugins.cri.containerd.runtimes.hostnet]
  runtime_type = "io.containerd.hostnet.v1"
  pod_annotations = ["hostnet.*/*"]
`},
	} {
		c, err := ParseCRIConfig([]byte(tc.doc))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var handlers []string
		passes, hasOptions, systemd := false, false, false
		for _, r := range c.Runtimes {
			handlers = append(handlers, r.Handler)
			if r.RuntimeType == runtimeType {
				passes, hasOptions = r.PassesAnnotation("hostnet.containerd.io/network"), r.HasOptions
			} else {
				systemd = systemd || r.SystemdCgroup
			}
		}
		if c.Version != tc.version || c.Disabled != tc.disabled || !reflect.DeepEqual(handlers, tc.handlers) ||
			passes != tc.passes || hasOptions != tc.hasOptions || systemd != tc.systemd {
			t.Errorf("%s: version %d disabled %v handlers %q passes %v options %v systemd %v; want %d %v %q %v %v %v",
				tc.name, c.Version, c.Disabled, handlers, passes, hasOptions, systemd,
				tc.version, tc.disabled, tc.handlers, tc.passes, tc.hasOptions, tc.systemd)
		}
	}
	for _, bad := range []string{"version = 3\n[plugins\n", "version = 7\n"} {
		if _, err := ParseCRIConfig([]byte(bad)); err == nil {
			t.Errorf("ParseCRIConfig(%q): no error", bad)
		}
	}
}

func TestContainerdVersion(t *testing.T) {
	for _, tc := range []struct {
		out          string
		major, minor int
		status       string
	}{
		{"containerd github.com/containerd/containerd/v2 v2.4.2 abcdef\n", 2, 4, StatusOK},
		{"containerd github.com/containerd/containerd/v2 2.4.2+unknown \n", 2, 4, StatusOK},
		{"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n", 1, 6, StatusOK},
		{"containerd github.com/containerd/containerd v1.5.18 abc\n", 1, 5, StatusFail},
		{"containerd github.com/containerd/containerd/v2 v2.5.0 abc\n", 2, 5, StatusWarn},
		{"containerd github.com/containerd/containerd/v3 v3.0.0 abc\n", 3, 0, StatusWarn},
	} {
		major, minor, _, ok := ParseContainerdVersion(tc.out)
		if !ok || major != tc.major || minor != tc.minor {
			t.Errorf("ParseContainerdVersion(%q) = %d.%d %v, want %d.%d", tc.out, major, minor, ok, tc.major, tc.minor)
			continue
		}
		if status, _ := CheckContainerdVersion(major, minor); status != tc.status {
			t.Errorf("CheckContainerdVersion(%d.%d) = %s, want %s", major, minor, status, tc.status)
		}
	}
	if _, _, _, ok := ParseContainerdVersion("containerd dev"); ok {
		t.Error("ParseContainerdVersion(no version): ok")
	}
}

func TestKeyBundle(t *testing.T) {
	state := "/run/containerd"
	bundle := filepath.Join(state, taskDir, "default", "web")
	key := network.BridgeKey(bundle, "default", "web")
	if got, ours := KeyBundle(state, key); !ours || got != bundle {
		t.Errorf("KeyBundle(%q) = %q, %v; want %q, ours", key, got, ours, bundle)
	}
	// The same namespace/id of another containerd's state directory.
	other := network.BridgeKey(filepath.Join("/run/other", taskDir, "default", "web"), "default", "web")
	if _, ours := KeyBundle(state, other); ours {
		t.Errorf("KeyBundle(%q): another state directory's key is ours", other)
	}
	for _, bad := range []string{"bridge:hostnet0", "default/web", "../x@00000000", "default/..@00000000", "default/a/b@00000000", ""} {
		if _, ours := KeyBundle(state, bad); ours {
			t.Errorf("KeyBundle(%q): ours", bad)
		}
	}
	if !strings.HasPrefix(key, "default/web@") {
		t.Errorf("key %q", key)
	}
}

// TestForwardPolicies: the ip6tables FORWARD policy is reported, like
// iptables', when the bridge has subnet6 (and only then); a DROP is
// covered only where that flavour's ip6tables command exists.
func TestForwardPolicies(t *testing.T) {
	flavours := func(v6 bool) []fwd.Flavour {
		if !v6 {
			return []fwd.Flavour{{Name: "nf_tables", Binary: "/usr/sbin/iptables-nft"}}
		}
		return []fwd.Flavour{
			{Name: "nf_tables", Binary: "/usr/sbin/ip6tables-nft", DropPolicy: true},
			{Name: "legacy"}, // a filter table, no ip6tables-legacy
		}
	}
	list := func(bin string) (fwd.Chain, error) {
		if strings.HasPrefix(filepath.Base(bin), "ip6tables") {
			return fwd.Chain{Binary: bin, Policy: "DROP"}, nil
		}
		return fwd.Chain{Binary: bin, Policy: "ACCEPT"}, nil
	}
	messages := func(d *doctor) string {
		var out []string
		for _, f := range d.findings {
			out = append(out, f.Status+": "+f.Message)
		}
		return strings.Join(out, "\n")
	}

	var d doctor
	d.forwardPolicies(flavours, list)
	if got := messages(&d); got != "ok: iptables (nf_tables) FORWARD policy ACCEPT\nok: no iptables FORWARD chain drops by policy" {
		t.Errorf("without subnet6:\n%s", got)
	}

	d = doctor{}
	d.node.Network.Bridge.Subnet6 = netip.MustParsePrefix("fd00:1::/64")
	d.forwardPolicies(flavours, list)
	want := []string{
		"ok: iptables (nf_tables) FORWARD policy ACCEPT",
		"ok: no iptables FORWARD chain drops by policy",
		"ok: ip6tables (nf_tables) FORWARD policy DROP: covered, bridge mode inserts accept rules for its containers' IPv6 (subnet6) in it (/usr/sbin/ip6tables-nft)",
		"fail: the legacy ip6tables filter table has a FORWARD chain but no ip6tables command of that flavour is installed: bridge mode cannot let its containers' IPv6 (subnet6) through it",
	}
	if got := messages(&d); got != strings.Join(want, "\n") {
		t.Errorf("with subnet6:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if f := d.findings[3]; f.Check != "forward-policy" || !strings.Contains(f.Remedy, "ip6tables") {
		t.Errorf("missing ip6tables: %+v", f)
	}
}
