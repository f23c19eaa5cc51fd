package manager

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	_ "github.com/containerd/containerd/v2/core/runtime" // registers features.Features, as in the shim binary
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hostnet-dev/hostnet/shim/config"
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
//
// Options without a hostnet document (none, as CRI sends for a runtime
// without an options table, or runc's) select the runtime of the node's
// configuration file ($HOSTNET_CONFIG here), as a create with them does.
func TestInfoFeaturesOfConfiguredRuntime(t *testing.T) {
	fromTOML, fromRunc, fromNode := fakeRuntime(t, "from-toml"), fakeRuntime(t, "from-runc-options"), fakeRuntime(t, "from-node-config")
	tomlPath := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(tomlPath, []byte("[runtime]\nbinary = \""+fromTOML+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodePath := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(nodePath, []byte("[runtime]\nbinary = \""+fromNode+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.PathEnv, nodePath)
	for name, tc := range map[string]struct {
		opts proto.Message
		want string
	}{
		"ConfigPath":             {&runtimeoptions.Options{ConfigPath: tomlPath}, "from-toml"},
		"ConfigBody":             {&runtimeoptions.Options{ConfigBody: []byte("[runtime]\nbinary = \"" + fromTOML + "\"\n")}, "from-toml"},
		"BinaryName":             {&options.Options{BinaryName: fromRunc}, "from-runc-options"},
		"no options":             {nil, "from-node-config"},
		"runc options, no name":  {&options.Options{SystemdCgroup: true}, "from-node-config"},
		"runtimeoptions, no doc": {&runtimeoptions.Options{}, "from-node-config"},
	} {
		t.Run(name, func(t *testing.T) {
			var a *anypb.Any
			var data []byte
			if tc.opts != nil {
				var err error
				if a, err = typeurl.MarshalAnyToProto(tc.opts); err != nil {
					t.Fatal(err)
				}
				if data, err = proto.Marshal(a); err != nil {
					t.Fatal(err)
				}
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
			if info.Options.GetTypeUrl() != a.GetTypeUrl() {
				t.Errorf("options not echoed: %v", info.Options)
			}
		})
	}
}

// A node configuration file that cannot be parsed fails Info as it fails a
// create, naming the file, rather than reporting another runtime's features.
func TestInfoNodeConfigInvalid(t *testing.T) {
	nodePath := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(nodePath, []byte("[runtime]\nbinray = \"runc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.PathEnv, nodePath)
	if _, err := New(RuntimeName).Info(context.Background(), bytes.NewReader(nil)); err == nil || !strings.Contains(err.Error(), nodePath) {
		t.Errorf("Info error %v, want one naming %s", err, nodePath)
	}
}
