package spec

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestAddHostFiles(t *testing.T) {
	s := &specs.Spec{Mounts: []specs.Mount{{Destination: "/etc/hosts/", Type: "bind", Source: "/var/lib/pod/hosts"}}}
	AddHostFiles(s, HostFiles)
	if len(s.Mounts) != 2 {
		t.Fatalf("mounts = %+v, want the spec's /etc/hosts kept and resolv.conf added", s.Mounts)
	}
	got := s.Mounts[1]
	if got.Destination != "/etc/resolv.conf" || got.Source != "/etc/resolv.conf" || got.Type != "bind" {
		t.Errorf("added mount %+v", got)
	}
	if !reflect.DeepEqual(got.Options, []string{"rbind", "ro", "nosuid", "nodev", "noexec"}) {
		t.Errorf("options %v, want read-only bind", got.Options)
	}
}

func TestSetHostHostname(t *testing.T) {
	uts := specs.LinuxNamespace{Type: specs.UTSNamespace}
	for _, tc := range []struct {
		name string
		in   *specs.Spec
		want string
	}{
		{"own uts", &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{uts}}}, "node1"},
		{"spec hostname kept", &specs.Spec{Hostname: "web", Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{uts}}}, "web"},
		{"host uts", &specs.Spec{Linux: &specs.Linux{}}, ""},
	} {
		SetHostHostname(tc.in, "node1")
		if tc.in.Hostname != tc.want {
			t.Errorf("%s: hostname = %q, want %q", tc.name, tc.in.Hostname, tc.want)
		}
	}
}

func TestCheckHostSysctls(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"kernel.msgmax": "1", "net.ipv4.ip_forward": "1", "net.core.somaxconn": "1"}}}
	err := CheckHostSysctls(s)
	if err == nil || !strings.Contains(err.Error(), "net.core.somaxconn, net.ipv4.ip_forward") {
		t.Fatalf("err = %v", err)
	}
	delete(s.Linux.Sysctl, "net.ipv4.ip_forward")
	delete(s.Linux.Sysctl, "net.core.somaxconn")
	if err := CheckHostSysctls(s); err != nil {
		t.Errorf("kernel.* sysctl refused: %v", err)
	}
	// Issue 10 item 7: other spellings of a net.* key are net.* keys too.
	for key, want := range map[string]string{
		".net.ipv4.conf.lo.arp_announce":   "invalid sysctl name",
		"net/ipv4/conf/lo/arp_announce":    "not allowed in host network mode",
		"net/ipv4/conf/eth0.100/rp_filter": "not allowed in host network mode",
		"net..ipv4.ip_forward":             "invalid sysctl name",
		"kernel/../net/ipv4/ip_forward":    "invalid sysctl name",
	} {
		s := &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{key: "1"}}}
		if err := CheckHostSysctls(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", key, err, want)
		}
	}
}

func TestHarden(t *testing.T) {
	caps := func(c ...string) []string { return c }
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: caps("CAP_CHOWN", "CAP_NET_RAW"), Effective: caps("CAP_NET_RAW"), Permitted: caps("CAP_NET_RAW", "CAP_KILL"),
	}}}
	if _, err := Harden(s); err != nil {
		t.Fatal(err)
	}
	c := s.Process.Capabilities
	if !reflect.DeepEqual(c.Bounding, caps("CAP_CHOWN")) || len(c.Effective) != 0 || !reflect.DeepEqual(c.Permitted, caps("CAP_KILL")) {
		t.Errorf("capabilities after Harden: %+v", c)
	}
	c.Effective = caps("CAP_NET_ADMIN")
	if _, err := Harden(s); err == nil || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("CAP_NET_ADMIN: err = %v", err)
	}
	// Issue 10 item 6: another spelling is refused, not let through for a
	// runtime that folds case to grant.
	for _, name := range []string{"CAP_net_admin", "CAP_Net_Raw", "cap_net_admin", "NET_ADMIN"} {
		s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Ambient: caps(name)}}}
		if _, err := Harden(s); err == nil || !strings.Contains(err.Error(), "is not a capability name") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestDropCRIDefaultSysctls(t *testing.T) {
	defaults := func() map[string]string {
		return map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
	}
	sandbox := map[string]string{CRIContainerTypeAnnotation: "sandbox"}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		sysctl      map[string]string
		wantDropped []string
		wantLeft    []string
	}{
		{name: "containerd's defaults", annotations: sandbox, sysctl: defaults(),
			wantDropped: []string{"net.ipv4.ip_unprivileged_port_start=0", "net.ipv4.ping_group_range=0 2147483647"}},
		{name: "not a CRI sandbox", annotations: map[string]string{CRIContainerTypeAnnotation: "container"}, sysctl: defaults(),
			wantLeft: []string{"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range"}},
		{name: "not CRI", sysctl: defaults(), wantLeft: []string{"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range"}},
		{name: "another value", annotations: sandbox,
			sysctl:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "net.ipv4.ping_group_range": "0 2147483647"},
			wantDropped: []string{"net.ipv4.ping_group_range=0 2147483647"}, wantLeft: []string{"net.ipv4.ip_unprivileged_port_start"}},
		{name: "another spelling", annotations: sandbox,
			sysctl:   map[string]string{"net/ipv4/ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range ": "0 2147483647"},
			wantLeft: []string{"net.ipv4.ping_group_range ", "net/ipv4/ip_unprivileged_port_start"}},
		{name: "others kept", annotations: sandbox,
			sysctl:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ip_forward": "1", "kernel.shmmax": "1"},
			wantDropped: []string{"net.ipv4.ip_unprivileged_port_start=0"}, wantLeft: []string{"kernel.shmmax", "net.ipv4.ip_forward"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{Annotations: tc.annotations, Linux: &specs.Linux{Sysctl: tc.sysctl}}
			dropped := DropCRIDefaultSysctls(s)
			if !reflect.DeepEqual(dropped, tc.wantDropped) {
				t.Errorf("dropped %q, want %q", dropped, tc.wantDropped)
			}
			left := slices.Sorted(maps.Keys(s.Linux.Sysctl))
			if len(left) != len(tc.wantLeft) || (len(left) > 0 && !reflect.DeepEqual(left, tc.wantLeft)) {
				t.Errorf("left %q, want %q", left, tc.wantLeft)
			}
			if len(tc.wantLeft) > 0 && CheckHostSysctls(s) == nil {
				t.Errorf("CheckHostSysctls accepts what was left: %v", s.Linux.Sysctl)
			}
		})
	}
}
