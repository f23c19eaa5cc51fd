package spec

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseSysctl(t *testing.T) {
	for key, want := range map[string]Sysctl{
		"net.ipv4.ip_forward":               {"net.ipv4.ip_forward", "net/ipv4/ip_forward"},
		"net/ipv4/ip_forward":               {"net.ipv4.ip_forward", "net/ipv4/ip_forward"},
		"net.ipv4.conf.eth0/100.rp_filter":  {"net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter"},
		"net/ipv4/conf/eth0.100/rp_filter":  {"net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter"},
		"kernel.shm_rmid_forced":            {"kernel.shm_rmid_forced", "kernel/shm_rmid_forced"},
		"fs.mqueue.queues_max":              {"fs.mqueue.queues_max", "fs/mqueue/queues_max"},
		"kernel":                            {"kernel", "kernel"},
		"net.ipv4.conf.a/b/c.arp_announce":  {"net.ipv4.conf.a/b/c.arp_announce", "net/ipv4/conf/a.b.c/arp_announce"},
		"net/ipv4/neigh/default/gc_thresh1": {"net.ipv4.neigh.default.gc_thresh1", "net/ipv4/neigh/default/gc_thresh1"},
		// Found by FuzzParseSysctl: bytes, not runes, are swapped.
		"kernel.x\xff": {"kernel.x\xff", "kernel/x\xff"},
	} {
		got, err := ParseSysctl(key)
		if err != nil || got != want {
			t.Errorf("ParseSysctl(%q) = %+v, %v; want %+v", key, got, err, want)
		}
	}
	for _, key := range []string{
		"", ".", "/", ".net.ipv4.ip_forward", "/net/ipv4/ip_forward", "net.ipv4.ip_forward.",
		"net..ipv4", "kernel/../net/ipv4/ip_forward", "net/./ipv4/ip_forward",
		"net.ipv4.conf.//.arp_announce", // the component ".." in the dotted form
		"net.ipv4.conf./.arp_announce",  // "."
		"kernel.x\x00y",
	} {
		if got, err := ParseSysctl(key); err == nil {
			t.Errorf("ParseSysctl(%q) = %+v, want an error", key, got)
		}
	}
}

func TestCheckSysctls(t *testing.T) {
	ns := func(types ...specs.LinuxNamespaceType) []specs.LinuxNamespace {
		var out []specs.LinuxNamespace
		for _, typ := range types {
			out = append(out, specs.LinuxNamespace{Type: typ})
		}
		return out
	}
	joined := func(path string) []specs.LinuxNamespace {
		return []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: path}}
	}
	hostNS := func(path string) (bool, error) {
		switch path {
		case "/host":
			return true, nil
		case "/gone":
			return false, errors.New("stat /gone: no such file or directory")
		}
		return false, nil
	}
	// runc 1.5.2's rules (libcontainer/configs/validate.sysctl) and words.
	for _, tc := range []struct {
		key  string
		ns   []specs.LinuxNamespace
		want string // "" means allowed
	}{
		{"kernel.shm_rmid_forced", ns(specs.IPCNamespace), ""},
		{"kernel/msgmax", ns(specs.IPCNamespace), ""},
		{"fs.mqueue.queues_max", ns(specs.IPCNamespace), ""},
		{"kernel.shm_rmid_forced", nil, `sysctl "kernel.shm_rmid_forced" is not allowed in the hosts ipc namespace`},
		{"net.ipv4.ip_forward", ns(specs.NetworkNamespace), ""},
		{"net/ipv4/conf/eth0.1/rp_filter", ns(specs.NetworkNamespace), ""},
		{"net.ipv4.ip_forward", nil, `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{"net.ipv4.ip_forward", joined("/pod"), ""},
		{"net.ipv4.ip_forward", joined("/host"), `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{"net.ipv4.ip_forward", joined("/gone"), "invalid netns path: stat /gone"},
		{"kernel.domainname", ns(specs.UTSNamespace), ""},
		{"kernel.domainname", nil, `sysctl "kernel.domainname" is not in a separate kernel namespace`},
		{"kernel.hostname", ns(specs.UTSNamespace), `sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field`},
		{"user.max_user_namespaces", ns(specs.UserNamespace), ""},
		{"user.max_user_namespaces", nil, "setting ucounts without a user namespace not allowed: user.max_user_namespaces"},
		{"kernel.core_uses_pid", ns(specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.UserNamespace, specs.PIDNamespace, specs.MountNamespace), `sysctl "kernel.core_uses_pid" is not in a separate kernel namespace`},
		{"vm.overcommit_memory", ns(specs.IPCNamespace), `sysctl "vm.overcommit_memory" is not in a separate kernel namespace`},
		{".net.ipv4.conf.lo.arp_announce", ns(specs.NetworkNamespace), `invalid sysctl name ".net.ipv4.conf.lo.arp_announce"`},
		{"net/../kernel/core_uses_pid", ns(specs.NetworkNamespace), "invalid sysctl name"},
	} {
		s := &specs.Spec{Linux: &specs.Linux{Namespaces: tc.ns, Sysctl: map[string]string{tc.key: "1"}}}
		err := CheckSysctls(s, hostNS)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s with %v: refused: %v", tc.key, tc.ns, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s with %v: err = %v, want %q", tc.key, tc.ns, err, tc.want)
		}
	}
	// Several bad keys: the first in sorted order, every time.
	s := &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"vm.a": "1", "kernel.b": "1", "fs.c": "1"}}}
	for range 5 {
		if err := CheckSysctls(s, hostNS); err == nil || !strings.Contains(err.Error(), `"fs.c"`) {
			t.Fatalf("err = %v, want the one about fs.c", err)
		}
	}
}
