package spec

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The annotations and the spec's capability and sysctl lists come from the
// pod author, whom hostnet does not trust: these targets check that their
// parsers never panic and keep their invariants. `make fuzz` runs each for
// a few seconds; the committed corpora under testdata/fuzz run with every
// `go test`.

// FuzzParsePorts: the ports annotation, and nerdctl's JSON one. Whatever is
// accepted is a valid mapping, and formats back to the same mappings.
func FuzzParsePorts(f *testing.F) {
	for _, seed := range []string{"8080:80/tcp,127.0.0.1:5353:53/udp", ":80", "[::1]:8080:80", "1:1/UDP", "80", "0:80", "a:b:c:d", ",,", "[fe80::1%eth0]:1:2"} {
		f.Add(seed, `[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]`)
	}
	f.Fuzz(func(t *testing.T, ours, nerdctl string) {
		checkMappings := func(what string, ports []PortMapping) {
			for _, p := range ports {
				if p.HostPort == 0 || p.ContainerPort == 0 || (p.Protocol != "tcp" && p.Protocol != "udp") {
					t.Fatalf("%s: accepted an invalid mapping %+v", what, p)
				}
			}
		}
		ports, err := ParsePorts(ours)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid port mapping") {
				t.Fatalf("ParsePorts(%q): error %q does not say what is wrong", ours, err)
			}
		} else {
			checkMappings("ParsePorts", ports)
			var items []string
			for _, p := range ports {
				items = append(items, p.String())
			}
			again, err := ParsePorts(strings.Join(items, ","))
			if err != nil || !slices.Equal(again, ports) {
				t.Fatalf("ParsePorts(%q) = %v, which formats as %q and parses back as %v, %v", ours, ports, items, again, err)
			}
		}
		s := &specs.Spec{Annotations: map[string]string{PortsAnnotation: ours, NerdctlPortsAnnotation: nerdctl}}
		if all, err := PortsFor(s); err == nil {
			checkMappings("PortsFor", all)
		}
	})
}

// FuzzModeFor: the network mode annotation selects one of Modes, which
// reads back as itself, or is refused naming the annotation.
func FuzzModeFor(f *testing.F) {
	for _, seed := range []string{"host", "bridge", "none", " host\n", "HOST", "", "overlay"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s := &specs.Spec{Annotations: map[string]string{NetworkAnnotation: v}}
		m, explicit, err := ModeFor(s, ModeBridge)
		if !explicit {
			t.Fatal("a set annotation is not reported explicit")
		}
		if err != nil {
			if !strings.Contains(err.Error(), NetworkAnnotation) {
				t.Fatalf("error %q does not name the annotation", err)
			}
			return
		}
		if !slices.Contains(Modes, m) {
			t.Fatalf("ModeFor(%q) = %q, not a mode", v, m)
		}
		if again, err := ParseNetworkMode(string(m)); err != nil || again != m {
			t.Fatalf("mode %q does not read back as itself: %q, %v", m, again, err)
		}
	})
}

// FuzzParseSysctl: an accepted key names a file under /proc/sys by plain
// descent, its two forms convert into each other, and parsing is stable.
func FuzzParseSysctl(f *testing.F) {
	for _, seed := range []string{"net.ipv4.ip_forward", "net/ipv4/conf/eth0.100/rp_filter", ".net.ipv4.conf.lo.arp_announce", "kernel/../net", "a//b", "net.ipv4.conf.//.x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		sc, err := ParseSysctl(key)
		if err != nil {
			return
		}
		for _, comp := range strings.Split(sc.Path, "/") {
			if comp == "" || comp == "." || comp == ".." || strings.ContainsRune(comp, 0) {
				t.Fatalf("ParseSysctl(%q).Path = %q: component %q is not plain descent", key, sc.Path, comp)
			}
		}
		for _, form := range []string{sc.Dotted, sc.Path} {
			again, err := ParseSysctl(form)
			// The slash form of a one-component key has no separator to
			// tell it by; both forms are then the same string.
			if err != nil || again != sc {
				t.Fatalf("ParseSysctl(%q) = %+v, but its form %q parses as %+v, %v", key, sc, form, again, err)
			}
		}
	})
}

// FuzzCheckSysctls: whatever the spec, an accepted sysctl's file is in a
// namespace the container has of its own. This states the rule on the
// path the runtime writes, independently of CheckSysctls' dotted form.
func FuzzCheckSysctls(f *testing.F) {
	f.Add("kernel.shm_rmid_forced", uint8(0xff), "")
	f.Add("net/ipv4/ip_forward", uint8(0x02), "/pod")
	f.Add("kernel.hostname", uint8(0x08), "")
	f.Fuzz(func(t *testing.T, key string, nsBits uint8, netPath string) {
		types := []specs.LinuxNamespaceType{specs.IPCNamespace, specs.NetworkNamespace, specs.UserNamespace, specs.UTSNamespace, specs.PIDNamespace}
		s := &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{key: "1"}}}
		for i, typ := range types {
			if nsBits&(1<<i) != 0 {
				ns := specs.LinuxNamespace{Type: typ}
				if typ == specs.NetworkNamespace {
					ns.Path = netPath
				}
				s.Linux.Namespaces = append(s.Linux.Namespaces, ns)
			}
		}
		isHost := func(p string) (bool, error) { return p == "/host", nil }
		if err := CheckSysctls(s, isHost); err != nil {
			return
		}
		sc, err := ParseSysctl(key)
		if err != nil {
			t.Fatalf("CheckSysctls accepted %q, which ParseSysctl refuses: %v", key, err)
		}
		own := func(typ specs.LinuxNamespaceType) bool {
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == typ {
					return typ != specs.NetworkNamespace || ns.Path != "/host"
				}
			}
			return false
		}
		p := sc.Path
		ok := false
		switch {
		case strings.HasPrefix(p, "net/"):
			ok = own(specs.NetworkNamespace)
		case strings.HasPrefix(p, "fs/mqueue/"), slices.Contains([]string{"kernel/msgmax", "kernel/msgmnb", "kernel/msgmni", "kernel/sem", "kernel/shmall", "kernel/shmmax", "kernel/shmmni", "kernel/shm_rmid_forced"}, p):
			ok = own(specs.IPCNamespace)
		case p == "kernel/domainname":
			ok = own(specs.UTSNamespace)
		case strings.HasPrefix(p, "user/"):
			ok = own(specs.UserNamespace)
		}
		if !ok {
			t.Fatalf("CheckSysctls accepted %q (file %s) with namespaces %+v", key, p, s.Linux.Namespaces)
		}
	})
}

// FuzzCapabilityNames: a set CheckCapabilityNames accepts holds only
// names that no runtime reads as another capability: ParseCapability and
// a case-folding reader agree on each.
func FuzzCapabilityNames(f *testing.F) {
	f.Add(`["CAP_NET_ADMIN","CAP_net_admin","CAP_SOME_FUTURE"]`)
	f.Add(`["cap_net_raw"]`)
	f.Fuzz(func(t *testing.T, list string) {
		var names []string
		if json.Unmarshal([]byte(list), &names) != nil {
			return
		}
		c := &specs.LinuxCapabilities{Bounding: names, Ambient: names}
		err := CheckCapabilityNames(c)
		for _, n := range names {
			exact, okExact := ParseCapability(n)
			folded, okFolded := ParseCapability(strings.ToUpper(n))
			if err == nil && (okExact != okFolded || exact != folded) {
				t.Fatalf("accepted %q: exactly %v (%v), case-folded %v (%v)", n, exact, okExact, folded, okFolded)
			}
			if okExact && CapabilityName(exact) != n {
				t.Fatalf("%q parses as %v, whose name is %q", n, exact, CapabilityName(exact))
			}
		}
	})
}
