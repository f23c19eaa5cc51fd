package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hostnet-dev/hostnet/shim/ociruntime"
)

func TestDecodeOptions(t *testing.T) {
	o, hn, err := decodeOptions(nil)
	if err != nil || o.BinaryName != "" || hn.Network.DefaultMode != "host" {
		t.Fatalf("decodeOptions(nil) = %v, %+v, %v", o, hn, err)
	}

	a, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "/usr/sbin/runc", Root: "/run/x"})
	if err != nil {
		t.Fatal(err)
	}
	o, _, err = decodeOptions(a)
	if err != nil || o.BinaryName != "/usr/sbin/runc" || o.Root != "/run/x" {
		t.Fatalf("decodeOptions = %v, %v", o, err)
	}

	other, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeOptions(other); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("decodeOptions(other type) error = %v, want invalid argument", err)
	}
	if _, _, err := decodeOptions(&anypb.Any{TypeUrl: "example.com/unknown", Value: []byte{1}}); err == nil {
		t.Error("decodeOptions(unknown type) succeeded")
	}
}

func TestDecodeHostnetConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(path, []byte("[network]\ndefault_mode = \"none\"\n[runtime]\nbinary = \"/usr/sbin/runc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, ro := range map[string]*runtimeoptions.Options{
		"path": {ConfigPath: path},
		"body": {ConfigBody: []byte("[network]\ndefault_mode = \"none\"\n[runtime]\nbinary = \"/usr/sbin/runc\"\n")},
	} {
		a, err := typeurl.MarshalAnyToProto(ro)
		if err != nil {
			t.Fatal(err)
		}
		_, hn, err := decodeOptions(a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if hn.Network.DefaultMode != "none" || hn.Runtime.Binary != "/usr/sbin/runc" {
			t.Errorf("%s: decoded %+v", name, hn)
		}
	}
	a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte("[network]\ndefault_mode = \"mesh\"\n")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeOptions(a); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `invalid network mode "mesh"`) {
		t.Errorf("bad config body: err = %v", err)
	}
}

func TestFromOptions(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "my-runc")
	writeExecutable(t, bin)
	a, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: bin, Root: "/run/my-runc", SystemdCgroup: true, IoUid: 7})
	if err != nil {
		t.Fatal(err)
	}
	bundle := "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1"
	c, err := FromOptions(a, "k8s.io", bundle)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Runtime: ociruntime.Config{Binary: bin, Root: ociruntime.StateRoot("/run/my-runc", "k8s.io", bundle), SystemdCgroup: true},
		IoUID:   7,
		Network: Defaults().Network,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("FromOptions = %+v, want %+v", c, want)
	}
}

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}
