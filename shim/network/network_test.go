package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/spec"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
)

// specFile is the bundle's OCI spec, as containerd names it.
const specFile = "config.json"

func writeBundle(t testing.TB, s *specs.Spec) (dir string, raw []byte) {
	t.Helper()
	dir = t.TempDir()
	raw, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, specFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, raw
}

func newSpec(annotation string, ns ...specs.LinuxNamespace) *specs.Spec {
	s := &specs.Spec{Version: specs.Version, Linux: &specs.Linux{Namespaces: ns}}
	if annotation != "" {
		s.Annotations = map[string]string{spec.NetworkAnnotation: annotation}
	}
	return s
}

func readBack(t testing.TB, dir string) ([]byte, *specs.Spec) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, specFile))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return raw, &s
}

var (
	newNet  = specs.LinuxNamespace{Type: specs.NetworkNamespace}
	joinNet = specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}
	pidNS   = specs.LinuxNamespace{Type: specs.PIDNamespace}
)

// prepare is Prepare as the task service runs it: on the bundle's spec,
// saved when Prepare changed it.
func prepare(r Request) (Result, error) {
	s, err := r.Bundle.ReadSpec()
	if err != nil {
		return Result{}, err
	}
	res, err := Prepare(context.Background(), r, s)
	if err == nil && res.SpecChanged {
		err = r.Bundle.WriteSpec(s)
	}
	return res, err
}

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       *specs.Spec
		wantMode   spec.NetworkMode
		wantNS     []specs.LinuxNamespace
		wantSame   bool // the spec must be left alone
		wantErr    error
		errMention string
	}{
		{name: "default drops new netns", spec: newSpec("", pidNS, newNet), wantMode: spec.ModeHost, wantNS: []specs.LinuxNamespace{pidNS}},
		{name: "default keeps joined netns", spec: newSpec("", pidNS, joinNet), wantMode: spec.ModeHost, wantSame: true},
		{name: "explicit host drops joined netns", spec: newSpec("host", joinNet, pidNS), wantMode: spec.ModeHost, wantNS: []specs.LinuxNamespace{pidNS}},
		{name: "host without netns", spec: newSpec("host", pidNS), wantMode: spec.ModeHost, wantNS: []specs.LinuxNamespace{pidNS}},
		{name: "none is untouched", spec: newSpec("none", pidNS, newNet), wantMode: spec.ModeNone, wantSame: true},
		{name: "bridge joining a netns", spec: newSpec("bridge", joinNet), wantErr: errdefs.ErrInvalidArgument, errMention: "joins network namespace /proc/1/ns/net"},
		{name: "invalid", spec: newSpec("macvlan", newNet), wantErr: errdefs.ErrInvalidArgument, errMention: spec.NetworkAnnotation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := json.Marshal(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			s := tc.spec
			res, err := Prepare(context.Background(), request(t.TempDir(), config.Network{}), s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errMention) {
					t.Fatalf("Prepare error = %v, want %v mentioning %q", err, tc.wantErr, tc.errMention)
				}
				return
			}
			if err != nil || res.Mode != tc.wantMode {
				t.Fatalf("Prepare = %q, %v; want %q", res.Mode, err, tc.wantMode)
			}
			if tc.wantSame {
				if after, _ := json.Marshal(s); res.SpecChanged || string(after) != string(before) {
					t.Errorf("the spec was rewritten (changed %v):\n%s", res.SpecChanged, after)
				}
				return
			}
			if !res.SpecChanged {
				t.Error("Prepare rewrote the spec without saying so")
			}
			if len(s.Linux.Namespaces) != len(tc.wantNS) {
				t.Fatalf("namespaces = %+v, want %+v", s.Linux.Namespaces, tc.wantNS)
			}
			for i := range tc.wantNS {
				if s.Linux.Namespaces[i] != tc.wantNS[i] {
					t.Errorf("namespace %d = %+v, want %+v", i, s.Linux.Namespaces[i], tc.wantNS[i])
				}
			}
			if res.Mode == spec.ModeHost && len(s.Mounts) != len(spec.HostFiles) {
				t.Errorf("host mode mounts = %+v, want the host's resolv.conf and hosts", s.Mounts)
			}
		})
	}
}

func request(dir string, n config.Network) Request {
	if n.DefaultMode == "" {
		n.DefaultMode = spec.ModeHost
	}
	return Request{Bundle: bundle.New(dir), ID: "c1", Namespace: "test", Config: n}
}
func TestPrepareHostMode(t *testing.T) {
	hostname, _ := os.Hostname()
	for _, tc := range []struct {
		name     string
		mutate   func(*specs.Spec)
		cfg      config.Network
		wantErr  string
		wantWarn bool
		check    func(t *testing.T, s *specs.Spec)
	}{
		{name: "host hostname with own uts", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace})
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Hostname != hostname {
				t.Errorf("hostname = %q, want the host's %q", s.Hostname, hostname)
			}
		}},
		{name: "published ports warn", mutate: func(s *specs.Spec) {
			s.Annotations = map[string]string{spec.PortsAnnotation: "65000:65001/udp"}
		}, wantWarn: true},
		{name: "malformed ports", mutate: func(s *specs.Spec) {
			s.Annotations = map[string]string{spec.PortsAnnotation: "80"}
		}, wantErr: `annotation hostnet.containerd.io/ports: invalid port mapping "80"`},
		{name: "net sysctl refused", mutate: func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, wantErr: "net.ipv4.ip_forward would change the host"},
		{name: "leading-dot net sysctl refused", mutate: func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{".net.ipv4.conf.lo.arp_announce": "1"}
		}, wantErr: `invalid sysctl name ".net.ipv4.conf.lo.arp_announce"`},
		{name: "misspelt capability refused", mutate: func(s *specs.Spec) {
			s.Process = &specs.Process{Capabilities: &specs.LinuxCapabilities{Effective: []string{"CAP_net_admin"}}}
		}, wantErr: `names are case-sensitive, this one is spelled "CAP_NET_ADMIN"`},
		{name: "hardened refuses misspelt NET_ADMIN", cfg: config.Network{Hardened: true}, mutate: func(s *specs.Spec) {
			s.Process = &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_Net_Admin"}}}
		}, wantErr: "is not a capability name"},
		{name: "hardened drops NET_RAW", cfg: config.Network{Hardened: true}, mutate: func(s *specs.Spec) {
			s.Process = &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_NET_RAW", "CAP_KILL"}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if got := s.Process.Capabilities.Bounding; len(got) != 1 || got[0] != "CAP_KILL" {
				t.Errorf("bounding = %v", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantWarn {
				nstest.NeedRoot(t) // the port check reads the nft table
			}
			s := newSpec("", pidNS, newNet)
			tc.mutate(s)
			res, err := Prepare(context.Background(), request(t.TempDir(), tc.cfg), s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want invalid argument containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(res.Warnings) > 0 && res.Warnings[0] == spec.PublishedPortsWarning; got != tc.wantWarn {
				t.Errorf("warnings = %q", res.Warnings)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// A hostNetwork pod's app containers join the sandbox's netns by path, and
// that is the host's: hardened holds for them as for a host mode container.
// Another netns joined by path is left as it is.
func TestPrepareJoinsHostNetNS(t *testing.T) {
	nstest.NeedRoot(t)
	other := filepath.Join(t.TempDir(), "other")
	if err := netns.Create(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(other) })
	self := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	for _, tc := range []struct {
		path     string
		hardened bool
	}{{self, true}, {other, false}} {
		s := newSpec("", pidNS, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: tc.path})
		s.Process = &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_NET_RAW", "CAP_KILL"}}}
		res, err := Prepare(context.Background(), request(t.TempDir(), config.Network{Hardened: true}), s)
		if err != nil {
			t.Fatalf("join %s: %v", tc.path, err)
		}
		hasRaw := slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_RAW")
		if res.Hardened != tc.hardened || hasRaw == tc.hardened {
			t.Errorf("join %s: hardened %v, CAP_NET_RAW kept %v; want hardened %v", tc.path, res.Hardened, hasRaw, tc.hardened)
		}
	}
}
