package network

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/spec"
)

// FuzzPrepare: the spec rewrite, on a config.json and annotations the pod
// author controls. Bridge mode is left out (it creates links, as root);
// host and none are pure rewrites. The invariants:
//   - a refused spec, and every spec in none mode, is left byte for byte;
//   - in host mode the container never gets a network namespace of its
//     own, and an explicit annotation leaves none at all;
//   - in the host's netns no sysctl the runtime would write under net/
//     survives, and every key is one the runtime reads as checked;
//   - hardened, no capability set holds a name that reads as CAP_NET_ADMIN
//     or CAP_NET_RAW, exactly or case-folded;
//   - nothing else changes but the host files, the hostname and, hardened,
//     CAP_NET_RAW; and a second Prepare changes nothing.
func FuzzPrepare(f *testing.F) {
	base := func(edit func(*specs.Spec)) string {
		s := &specs.Spec{
			Version: specs.Version,
			Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", Capabilities: &specs.LinuxCapabilities{
				Bounding: []string{"CAP_CHOWN", "CAP_NET_RAW"}, Effective: []string{"CAP_NET_RAW"},
			}},
			Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.UTSNamespace}}},
		}
		edit(s)
		data, _ := json.Marshal(s)
		return string(data)
	}
	f.Add(base(func(*specs.Spec) {}), false, uint8(0))
	f.Add(base(func(s *specs.Spec) { s.Annotations = map[string]string{spec.NetworkAnnotation: "host"} }), true, uint8(0))
	f.Add(base(func(s *specs.Spec) { s.Annotations = map[string]string{spec.NetworkAnnotation: "none"} }), true, uint8(0))
	f.Add(base(func(s *specs.Spec) {
		s.Linux.Namespaces[1].Path = "/proc/1/ns/net"
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	}), false, uint8(0))
	f.Add(base(func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{".net.ipv4.conf.lo.arp_announce": "1"} }), false, uint8(0))
	f.Add(base(func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_net_admin", "CAP_Net_Raw"} }), true, uint8(0))
	f.Add(base(func(s *specs.Spec) { s.Annotations = map[string]string{spec.PortsAnnotation: "1:2/udp"} }), false, uint8(2))

	f.Fuzz(func(t *testing.T, doc string, hardened bool, defMode uint8) {
		def := spec.Modes[int(defMode)%len(spec.Modes)]
		var parsed specs.Spec
		if json.Unmarshal([]byte(doc), &parsed) != nil {
			return
		}
		if m, _, err := spec.ModeFor(&parsed, def); err == nil && m == spec.ModeBridge {
			return
		}
		dir := t.TempDir()
		path := filepath.Join(dir, specFile)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		req := Request{Bundle: bundle.New(dir), ID: "fuzz", Namespace: "fuzz", Config: config.Network{DefaultMode: def, Hardened: hardened}}
		res, err := prepare(req)
		after, _ := os.ReadFile(path)
		if err != nil || res.Mode == spec.ModeNone {
			if !bytes.Equal(after, []byte(doc)) {
				t.Fatalf("mode %q, err %v: config.json changed:\n%s\nto\n%s", res.Mode, err, doc, after)
			}
			return
		}
		if res.Mode != spec.ModeHost {
			t.Fatalf("Prepare chose mode %q", res.Mode)
		}
		var s specs.Spec
		if err := json.Unmarshal(after, &s); err != nil {
			t.Fatalf("rewritten config.json does not parse: %v", err)
		}
		_, explicit := parsed.Annotations[spec.NetworkAnnotation]
		net, hasNet := spec.NetworkNamespace(&s)
		if hasNet && (explicit || net.Path == "") {
			t.Fatalf("host mode (explicit %v) left the netns %+v", explicit, net)
		}
		if !hasNet && s.Linux != nil {
			for k := range s.Linux.Sysctl {
				sc, err := spec.ParseSysctl(k)
				if err != nil || strings.HasPrefix(sc.Path, "net/") {
					t.Fatalf("sysctl %q (%+v, %v) survived in the host's netns", k, sc, err)
				}
			}
		}
		if hardened && !hasNet && s.Process != nil && s.Process.Capabilities != nil {
			for _, set := range spec.CapabilitySets(s.Process.Capabilities) {
				for _, n := range *set.Names {
					for _, form := range []string{n, strings.ToUpper(n), "CAP_" + strings.ToUpper(n)} {
						if c, ok := spec.ParseCapability(form); ok && (c == capability.CAP_NET_ADMIN || c == capability.CAP_NET_RAW) {
							t.Fatalf("hardened: %s set holds %q", set.Name, n)
						}
					}
				}
			}
		}
		if !sameApartFromHostRewrite(&parsed, &s) {
			t.Fatalf("the rewrite changed more than host mode may:\n%s\nto\n%s", doc, after)
		}
		if _, err := prepare(req); err != nil {
			t.Fatalf("second Prepare: %v", err)
		}
		if again, _ := os.ReadFile(path); !bytes.Equal(again, after) {
			t.Fatalf("second Prepare changed config.json again:\n%s\nto\n%s", after, again)
		}
	})
}

// sameApartFromHostRewrite compares two specs with what host mode may
// change cleared: the network namespace entry, mounts added after the
// original ones, the hostname, and CAP_NET_RAW.
func sameApartFromHostRewrite(before, after *specs.Spec) bool {
	norm := func(s specs.Spec, nMounts int) []byte {
		s.Hostname = ""
		if len(s.Mounts) > nMounts {
			s.Mounts = s.Mounts[:nMounts]
		}
		if s.Linux != nil {
			l := *s.Linux
			l.Namespaces = slices.DeleteFunc(slices.Clone(l.Namespaces), func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace })
			if len(l.Namespaces) == 0 {
				l.Namespaces = nil
			}
			s.Linux = &l
		}
		if s.Process != nil && s.Process.Capabilities != nil {
			p := *s.Process
			c := *p.Capabilities
			for _, set := range spec.CapabilitySets(&c) {
				*set.Names = slices.DeleteFunc(slices.Clone(*set.Names), func(n string) bool { return n == "CAP_NET_RAW" })
				if len(*set.Names) == 0 {
					*set.Names = nil
				}
			}
			p.Capabilities = &c
			s.Process = &p
		}
		data, _ := json.Marshal(s)
		return data
	}
	return bytes.Equal(norm(*before, len(before.Mounts)), norm(*after, len(before.Mounts)))
}
