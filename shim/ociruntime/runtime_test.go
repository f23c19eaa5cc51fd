package ociruntime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hostnet-dev/hostnet/shim/config"
)

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestResolveBinary(t *testing.T) {
	shimDir := t.TempDir()
	pathDir := t.TempDir()
	writeExecutable(t, filepath.Join(shimDir, "next-to-shim"))
	writeExecutable(t, filepath.Join(pathDir, "next-to-shim"))
	writeExecutable(t, filepath.Join(pathDir, "on-path"))
	if err := os.WriteFile(filepath.Join(shimDir, "not-exec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lookPath := func(name string) (string, error) {
		p := filepath.Join(pathDir, name)
		if checkExecutable(p) != nil {
			return "", exec.ErrNotFound
		}
		return p, nil
	}

	for _, tc := range []struct {
		name, want string
		wantErr    error
	}{
		{name: "next-to-shim", want: filepath.Join(shimDir, "next-to-shim")},
		{name: "on-path", want: filepath.Join(pathDir, "on-path")},
		{name: "not-exec", wantErr: errdefs.ErrFailedPrecondition},
		{name: "missing", wantErr: errdefs.ErrFailedPrecondition},
		{name: filepath.Join(pathDir, "on-path"), want: filepath.Join(pathDir, "on-path")},
		{name: filepath.Join(shimDir, "not-exec"), wantErr: errdefs.ErrFailedPrecondition},
		{name: "", wantErr: errdefs.ErrInvalidArgument},
	} {
		got, err := resolveBinary(tc.name, shimDir, lookPath)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("resolveBinary(%q) error = %v, want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("resolveBinary(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	_, err := resolveBinary("missing", shimDir, lookPath)
	for _, s := range []string{`"missing"`, shimDir, "$PATH", "BinaryName"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

func TestLastError(t *testing.T) {
	log := strings.Join([]string{
		`{"level":"warning","msg":"cgroup v1 is deprecated","time":"2024-01-01T00:00:00Z"}`,
		`{"level":"error","msg":"first failure","time":"2024-01-01T00:00:00Z"}`,
		`panic: not json at all`,
		`{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nosuchbin\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}`,
		`{"level":"info","msg":"after the error"}`,
		``,
	}, "\n")
	want := `runc create failed: unable to start container process: exec: "nosuchbin": executable file not found in $PATH`
	if got := lastError(strings.NewReader(log)); got != want {
		t.Errorf("lastError = %q, want %q", got, want)
	}
	if got := lastError(strings.NewReader(`{"level":"info","msg":"fine"}`)); got != "" {
		t.Errorf("lastError without errors = %q, want empty", got)
	}
}

func TestLastErrorSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	if err := os.WriteFile(path, []byte(`{"level":"error","msg":"stale"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	off := logOffset(path)
	if got := lastErrorSince(path, off); got != "" {
		t.Errorf("lastErrorSince before new entries = %q, want empty", got)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"level":"error","msg":"fresh"}` + "\n")
	f.Close()
	if got := lastErrorSince(path, off); got != "fresh" {
		t.Errorf("lastErrorSince = %q, want fresh", got)
	}
	if got := lastErrorSince(filepath.Join(t.TempDir(), "none"), 0); got != "" {
		t.Errorf("lastErrorSince on missing log = %q", got)
	}
}

func TestDecodeOptions(t *testing.T) {
	o, hn, err := DecodeOptions(nil)
	if err != nil || o.BinaryName != "" || hn.Network.DefaultMode != "host" {
		t.Fatalf("DecodeOptions(nil) = %v, %+v, %v", o, hn, err)
	}

	a, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "/usr/sbin/runc", Root: "/run/x"})
	if err != nil {
		t.Fatal(err)
	}
	o, _, err = DecodeOptions(a)
	if err != nil || o.BinaryName != "/usr/sbin/runc" || o.Root != "/run/x" {
		t.Fatalf("DecodeOptions = %v, %v", o, err)
	}

	other, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeOptions(other); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("DecodeOptions(other type) error = %v, want invalid argument", err)
	}
	if _, _, err := DecodeOptions(&anypb.Any{TypeUrl: "example.com/unknown", Value: []byte{1}}); err == nil {
		t.Error("DecodeOptions(unknown type) succeeded")
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
		_, hn, err := DecodeOptions(a)
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
	if _, _, err := DecodeOptions(a); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `invalid network mode "mesh"`) {
		t.Errorf("bad config body: err = %v", err)
	}
}

func TestConfigFromOptions(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "my-runc")
	writeExecutable(t, bin)
	a, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: bin, Root: "/run/my-runc", SystemdCgroup: true, IoUid: 7})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFromOptions(a, "k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Binary: bin, Root: "/run/my-runc/k8s.io", SystemdCgroup: true, IoUID: 7, Hostnet: config.Defaults()}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ConfigFromOptions = %+v, want %+v", c, want)
	}
}

func TestClassify(t *testing.T) {
	for msg, want := range map[string]error{
		`container "x" does not exist`: errdefs.ErrNotFound,
		"container not running":        errdefs.ErrNotFound,
		"something broke":              nil,
	} {
		if got := classify(msg); got != want {
			t.Errorf("classify(%q) = %v, want %v", msg, got, want)
		}
	}
}
