package spec

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func nsSpec(nss ...specs.LinuxNamespace) *specs.Spec {
	return &specs.Spec{Linux: &specs.Linux{Namespaces: nss}}
}

func TestApplyHostNetwork(t *testing.T) {
	pid := specs.LinuxNamespace{Type: specs.PIDNamespace}
	mnt := specs.LinuxNamespace{Type: specs.MountNamespace}
	newNet := specs.LinuxNamespace{Type: specs.NetworkNamespace}
	podNet := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1234"}

	for _, tc := range []struct {
		name        string
		in          *specs.Spec
		force       bool
		wantChanged bool
		wantNet     bool
		wantOthers  int
	}{
		{name: "new netns dropped", in: nsSpec(pid, newNet, mnt), wantChanged: true, wantOthers: 2},
		{name: "netns by path kept", in: nsSpec(pid, podNet, mnt), wantNet: true, wantOthers: 2},
		{name: "netns by path dropped when forced", in: nsSpec(pid, podNet, mnt), force: true, wantChanged: true, wantOthers: 2},
		{name: "already host", in: nsSpec(pid, mnt), wantOthers: 2},
		{name: "no linux section", in: &specs.Spec{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := ApplyHostNetwork(tc.in, tc.force)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			_, hasNet := NetworkNamespace(tc.in)
			if hasNet != tc.wantNet {
				t.Errorf("network namespace present = %v, want %v", hasNet, tc.wantNet)
			}
			if tc.in.Linux != nil {
				others := 0
				for _, ns := range tc.in.Linux.Namespaces {
					if ns.Type != specs.NetworkNamespace {
						others++
					}
				}
				if others != tc.wantOthers {
					t.Errorf("%d other namespaces left, want %d: %+v", others, tc.wantOthers, tc.in.Linux.Namespaces)
				}
			}
		})
	}
}

func TestModeFor(t *testing.T) {
	for _, tc := range []struct {
		name         string
		annotations  map[string]string
		def          NetworkMode
		want         NetworkMode
		wantExplicit bool
		wantErr      string
	}{
		{name: "default when absent", def: ModeHost, want: ModeHost},
		{name: "configured default", def: ModeNone, want: ModeNone},
		{name: "host", annotations: map[string]string{NetworkAnnotation: "host"}, def: ModeNone, want: ModeHost, wantExplicit: true},
		{name: "bridge", annotations: map[string]string{NetworkAnnotation: "bridge"}, def: ModeHost, want: ModeBridge, wantExplicit: true},
		{name: "none with spaces", annotations: map[string]string{NetworkAnnotation: " none "}, def: ModeHost, want: ModeNone, wantExplicit: true},
		{name: "unknown", annotations: map[string]string{NetworkAnnotation: "overlay"}, def: ModeHost, wantErr: `annotation hostnet.containerd.io/network: invalid network mode "overlay": must be one of host, bridge, none`},
		{name: "empty", annotations: map[string]string{NetworkAnnotation: ""}, def: ModeHost, wantErr: "invalid network mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, explicit, err := ModeFor(&specs.Spec{Annotations: tc.annotations}, tc.def)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || explicit != tc.wantExplicit {
				t.Errorf("got (%s, %v), want (%s, %v)", got, explicit, tc.want, tc.wantExplicit)
			}
		})
	}
}

func TestHasNamespace(t *testing.T) {
	s := nsSpec(specs.LinuxNamespace{Type: specs.PIDNamespace}, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"})
	if !HasNamespace(s, specs.PIDNamespace) || !HasNamespace(s, specs.NetworkNamespace) || HasNamespace(s, specs.UserNamespace) {
		t.Error("HasNamespace does not match the spec's entries")
	}
	if HasNamespace(&specs.Spec{}, specs.PIDNamespace) {
		t.Error("a spec without a linux section has no namespaces")
	}
}
