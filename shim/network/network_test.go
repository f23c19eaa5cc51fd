package network

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/spec"
)

func writeBundle(t *testing.T, s *specs.Spec) (bundle string, raw []byte) {
	t.Helper()
	bundle = t.TempDir()
	raw, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, configFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return bundle, raw
}

func newSpec(annotation string, ns ...specs.LinuxNamespace) *specs.Spec {
	s := &specs.Spec{Version: specs.Version, Linux: &specs.Linux{Namespaces: ns}}
	if annotation != "" {
		s.Annotations = map[string]string{spec.NetworkAnnotation: annotation}
	}
	return s
}

func readBack(t *testing.T, bundle string) ([]byte, *specs.Spec) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(bundle, configFile))
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

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       *specs.Spec
		wantMode   spec.NetworkMode
		wantNS     []specs.LinuxNamespace
		wantSame   bool // config.json must not be rewritten
		wantErr    error
		errMention string
	}{
		{name: "default drops new netns", spec: newSpec("", pidNS, newNet), wantMode: spec.ModeHost, wantNS: []specs.LinuxNamespace{pidNS}},
		{name: "default keeps joined netns", spec: newSpec("", pidNS, joinNet), wantMode: spec.ModeHost, wantSame: true},
		{name: "explicit host drops joined netns", spec: newSpec("host", joinNet, pidNS), wantMode: spec.ModeHost, wantNS: []specs.LinuxNamespace{pidNS}},
		{name: "host without netns", spec: newSpec("host", pidNS), wantMode: spec.ModeHost, wantSame: true},
		{name: "none is untouched", spec: newSpec("none", pidNS, newNet), wantMode: spec.ModeNone, wantSame: true},
		{name: "bridge", spec: newSpec("bridge", newNet), wantErr: errdefs.ErrNotImplemented, errMention: "bridge is not implemented yet", wantSame: true},
		{name: "invalid", spec: newSpec("macvlan", newNet), wantErr: errdefs.ErrInvalidArgument, errMention: spec.NetworkAnnotation, wantSame: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, before := writeBundle(t, tc.spec)
			mode, err := Prepare(bundle)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errMention) {
					t.Fatalf("Prepare error = %v, want %v mentioning %q", err, tc.wantErr, tc.errMention)
				}
			} else if err != nil || mode != tc.wantMode {
				t.Fatalf("Prepare = %q, %v; want %q", mode, err, tc.wantMode)
			}
			after, s := readBack(t, bundle)
			if tc.wantSame {
				if string(after) != string(before) {
					t.Errorf("config.json was rewritten:\n%s", after)
				}
				return
			}
			if len(s.Linux.Namespaces) != len(tc.wantNS) {
				t.Fatalf("namespaces = %+v, want %+v", s.Linux.Namespaces, tc.wantNS)
			}
			for i := range tc.wantNS {
				if s.Linux.Namespaces[i] != tc.wantNS[i] {
					t.Errorf("namespace %d = %+v, want %+v", i, s.Linux.Namespaces[i], tc.wantNS[i])
				}
			}
			fi, err := os.Stat(filepath.Join(bundle, configFile))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("config.json mode = %v, %v; want 0600 kept", fi.Mode().Perm(), err)
			}
			if entries, _ := os.ReadDir(bundle); len(entries) != 1 {
				t.Errorf("bundle holds %d files, want only config.json (no temp file left)", len(entries))
			}
		})
	}
}

func TestPrepareMissingSpec(t *testing.T) {
	if _, err := Prepare(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Prepare without config.json error = %v, want not exist", err)
	}
}
