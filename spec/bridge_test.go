package spec

import (
	"net/netip"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestJoinNetworkNamespace(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace},
	}}}
	JoinNetworkNamespace(s, "/run/b/netns")
	want := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/b/netns"}}
	if !reflect.DeepEqual(s.Linux.Namespaces, want) {
		t.Errorf("namespaces = %+v", s.Linux.Namespaces)
	}
	s = &specs.Spec{}
	JoinNetworkNamespace(s, "/x")
	if len(s.Linux.Namespaces) != 1 || s.Linux.Namespaces[0].Path != "/x" {
		t.Errorf("namespaces = %+v", s.Linux.Namespaces)
	}
}

func TestSetBridgeHostname(t *testing.T) {
	uts := specs.LinuxNamespace{Type: specs.UTSNamespace}
	s := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{uts}}}
	SetBridgeHostname(s, "0123456789abcdef")
	if s.Hostname != "0123456789ab" {
		t.Errorf("hostname = %q", s.Hostname)
	}
	s = &specs.Spec{Linux: &specs.Linux{}}
	SetBridgeHostname(s, "web")
	if s.Hostname != "" {
		t.Errorf("host UTS namespace got hostname %q", s.Hostname)
	}
}

func TestHostsFile(t *testing.T) {
	got := string(HostsFile("web", netip.MustParseAddr("10.89.0.2")))
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.89.0.2\tweb\n"
	if got != want {
		t.Errorf("hosts =\n%s\nwant\n%s", got, want)
	}
	// Dual stack: the name on both addresses; IPv6 only: on that one.
	got = string(HostsFile("web", netip.MustParseAddr("10.89.0.2"), netip.MustParseAddr("fd00:89::2")))
	if want := want + "fd00:89::2\tweb\n"; got != want {
		t.Errorf("dual-stack hosts =\n%s\nwant\n%s", got, want)
	}
	got = string(HostsFile("web", netip.Addr{}, netip.MustParseAddr("fd00:89::2")))
	if want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfd00:89::2\tweb\n"; got != want {
		t.Errorf("IPv6-only hosts =\n%s\nwant\n%s", got, want)
	}
}

func TestResolvConf(t *testing.T) {
	host := "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fe80::1%eth0\nsearch example.com\noptions edns0\n"
	got, n := ResolvConf([]byte(host))
	want := "# generated\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n"
	if string(got) != want || n != 1 {
		t.Errorf("resolv.conf (%d nameservers) =\n%s\nwant\n%s", n, got, want)
	}
	if _, n := ResolvConf([]byte("nameserver 127.0.0.53\n")); n != 0 {
		t.Errorf("stub-only resolv.conf kept %d nameservers", n)
	}
}
