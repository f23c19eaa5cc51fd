package bundle

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSpec(t *testing.T) {
	b := New(t.TempDir())
	if _, err := b.ReadSpec(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadSpec without config.json = %v, want not exist", err)
	}
	if err := os.WriteFile(filepath.Join(b.Path, "config.json"), []byte(`{"hostname":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadSpec(); err == nil {
		t.Fatal("ReadSpec of a malformed config.json succeeded")
	}
	want := &specs.Spec{Version: specs.Version, Hostname: "h"}
	if err := b.WriteSpec(want); err != nil {
		t.Fatal(err)
	}
	got, err := b.ReadSpec()
	if err != nil || got.Hostname != "h" || got.Version != specs.Version {
		t.Fatalf("ReadSpec = %+v, %v", got, err)
	}
	// The mode containerd gave the file is kept, and nothing else is left.
	if fi, err := os.Stat(filepath.Join(b.Path, "config.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode = %v, %v; want 0600 kept", fi.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(b.Path); len(entries) != 1 {
		t.Errorf("bundle holds %d files, want config.json alone", len(entries))
	}
}

// TestSpecHead: ReadSpecHead gives the annotations and namespaces ReadSpec
// gives, and nothing else, and fails as ReadSpec does on a missing or
// malformed config.json.
func TestSpecHead(t *testing.T) {
	b := New(t.TempDir())
	if _, err := b.ReadSpecHead(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadSpecHead without config.json = %v, want not exist", err)
	}
	if err := os.WriteFile(filepath.Join(b.Path, "config.json"), []byte(`{"annotations":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadSpecHead(); err == nil {
		t.Fatal("ReadSpecHead of a malformed config.json succeeded")
	}
	for _, full := range []*specs.Spec{
		{Version: specs.Version, Hostname: "h"},
		{
			Version:     specs.Version,
			Process:     &specs.Process{Args: []string{"true"}},
			Annotations: map[string]string{"a": "1", "io.containerd.runc.v2.group": "g"},
			Linux: &specs.Linux{
				Namespaces:  []specs.LinuxNamespace{{Type: specs.NetworkNamespace}, {Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}},
				CgroupsPath: "/x",
			},
		},
	} {
		if err := b.WriteSpec(full); err != nil {
			t.Fatal(err)
		}
		got, err := b.ReadSpecHead()
		if err != nil {
			t.Fatal(err)
		}
		want := &specs.Spec{Annotations: full.Annotations}
		if full.Linux != nil {
			want.Linux = &specs.Linux{Namespaces: full.Linux.Namespaces}
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("ReadSpecHead = %s, want %s", gotJSON, wantJSON)
		}
	}
}

func TestExitRecord(t *testing.T) {
	b := New(t.TempDir())
	if _, err := b.ReadExit(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadExit without a record = %v", err)
	}
	want := runc.Exit{Pid: 42, Status: 3, Timestamp: time.Unix(1700000000, 5).UTC()}
	if err := b.WriteExit(want); err != nil {
		t.Fatal(err)
	}
	got, err := b.ReadExit()
	if err != nil || got.Pid != want.Pid || got.Status != want.Status || !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("ReadExit = %+v, %v; want %+v", got, err, want)
	}
}

// TestRecords: the runtime and network records round-trip, a missing one
// is os.ErrNotExist, and removing one twice is fine.
func TestRecords(t *testing.T) {
	b := New(t.TempDir())
	type record struct{ Name string }
	for name, rw := range map[string]struct {
		write func(any) error
		read  func(any) error
	}{
		"runtime": {b.WriteRuntime, b.ReadRuntime},
		"network": {b.WriteNetwork, b.ReadNetwork},
	} {
		var got record
		if err := rw.read(&got); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: read without a record = %v, want not exist", name, err)
		}
		if err := rw.write(record{Name: name}); err != nil {
			t.Fatal(err)
		}
		if err := rw.read(&got); err != nil || got.Name != name {
			t.Errorf("%s: read = %+v, %v", name, got, err)
		}
	}
	for range 2 {
		if err := b.RemoveNetwork(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.ReadNetwork(&struct{}{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network record after RemoveNetwork: %v", err)
	}
}

// TestShimAddress: containerd 2.x's bootstrap.json wins over the address
// file the shim writes for containerd 1.7.
func TestShimAddress(t *testing.T) {
	b := New(t.TempDir())
	if got := b.ShimAddress(); got != "" {
		t.Errorf("ShimAddress of an empty bundle = %q", got)
	}
	if err := b.WriteAddress("unix:///run/legacy"); err != nil {
		t.Fatal(err)
	}
	if got := b.ShimAddress(); got != "unix:///run/legacy" {
		t.Errorf("ShimAddress = %q, want the address file's", got)
	}
	data, _ := json.Marshal(map[string]any{"version": 3, "protocol": "ttrpc", "address": "unix:///run/bootstrap"})
	if err := os.WriteFile(filepath.Join(b.Path, "bootstrap.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := b.ShimAddress(); got != "unix:///run/bootstrap" {
		t.Errorf("ShimAddress = %q, want bootstrap.json's", got)
	}
}

// TestModeRecord: the mode and why round-trip; a bundle without the record
// says so with os.ErrNotExist.
func TestModeRecord(t *testing.T) {
	b := New(t.TempDir())
	if _, err := b.ReadMode(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadMode of an empty bundle: %v, want os.ErrNotExist", err)
	}
	want := Mode{Mode: "host", Why: "annotation hostnet.containerd.io/network"}
	if err := b.WriteMode(want); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ReadMode(); err != nil || got != want {
		t.Errorf("ReadMode = %+v, %v; want %+v", got, err, want)
	}
}
