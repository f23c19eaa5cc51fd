package manager

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	_ "github.com/containerd/containerd/v2/core/runtime" // registers features.Features, as in the shim binary
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
)

// fakeRuntime is an executable that answers `features` with a namespace
// list naming it, so a test can tell which runtime Info asked.
func fakeRuntime(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	script := "#!/bin/sh\n[ \"$1\" = features ] || exit 1\necho '{\"ociVersionMin\":\"1.0.0\",\"linux\":{\"namespaces\":[\"" + name + "\"]}}'\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// Issue 13 item 2: containerd's CRI asks the shim (`-info`, with the
// handler's options on stdin) for the runtime's features, and derives the
// handler's user_namespaces and recursive_read_only_mounts from them. CRI
// sends hostnet's TOML as runtimeoptions (ConfigPath or ConfigBody): Info
// refused that type ("invalid type"), so the hostnet handler reported no
// features at all. It now answers with the runtime the options select, in
// either form.
func TestInfoFeaturesOfConfiguredRuntime(t *testing.T) {
	fromTOML, fromRunc := fakeRuntime(t, "from-toml"), fakeRuntime(t, "from-runc-options")
	tomlPath := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(tomlPath, []byte("[runtime]\nbinary = \""+fromTOML+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		opts proto.Message
		want string
	}{
		"ConfigPath": {&runtimeoptions.Options{ConfigPath: tomlPath}, "from-toml"},
		"ConfigBody": {&runtimeoptions.Options{ConfigBody: []byte("[runtime]\nbinary = \"" + fromTOML + "\"\n")}, "from-toml"},
		"BinaryName": {&options.Options{BinaryName: fromRunc}, "from-runc-options"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := typeurl.MarshalAnyToProto(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			data, err := proto.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			info, err := New(RuntimeName).Info(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			if info.Features == nil {
				t.Fatal("Info reports no features")
			}
			v, err := typeurl.UnmarshalAny(info.Features)
			if err != nil {
				t.Fatal(err)
			}
			f, ok := v.(*features.Features)
			if !ok || f.Linux == nil || len(f.Linux.Namespaces) != 1 || f.Linux.Namespaces[0] != tc.want {
				t.Errorf("features %+v, want those of %s", v, tc.want)
			}
			if info.Options == nil || info.Options.GetTypeUrl() != a.GetTypeUrl() {
				t.Errorf("options not echoed: %v", info.Options)
			}
		})
	}
}
