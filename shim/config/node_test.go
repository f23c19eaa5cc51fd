package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hostnet-dev/hostnet/shim/ociruntime"
	"github.com/hostnet-dev/hostnet/spec"
)

// TestMain points the package's tests at an empty node configuration, so
// that a /etc/containerd/hostnet.toml on the machine running them changes
// nothing.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hostnet-config-test-")
	if err != nil {
		panic(err)
	}
	empty := filepath.Join(dir, "hostnet.toml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		panic(err)
	}
	os.Setenv(PathEnv, empty)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The node's document: the file $HOSTNET_CONFIG names, else the default
// path, where a missing file means the defaults and anything else wrong is
// an error naming the file.
func TestLoadNode(t *testing.T) {
	nodeFile := writeFile(t, "hostnet.toml", "[network]\ndefault_mode = \"none\"\n")
	envFile := writeFile(t, "env.toml", "[network]\ndefault_mode = \"bridge\"\n")
	invalid := writeFile(t, "invalid.toml", "[network]\ndefault_mode = \"mesh\"\n")
	missing := filepath.Join(t.TempDir(), "hostnet.toml")
	dir := t.TempDir()

	for name, tc := range map[string]struct {
		fromEnv, defaultPath string
		want                 spec.NetworkMode
		wantErr              []string
	}{
		"default file":            {"", nodeFile, spec.ModeNone, nil},
		"default file missing":    {"", missing, spec.ModeHost, nil},
		"default file invalid":    {"", invalid, "", []string{invalid, `invalid network mode "mesh"`}},
		"default file unreadable": {"", dir, "", []string{"read hostnet config", dir}},
		"env":                     {envFile, nodeFile, spec.ModeBridge, nil},
		"env over missing":        {envFile, missing, spec.ModeBridge, nil},
		"env missing":             {missing, nodeFile, "", []string{PathEnv, missing, "no such file"}},
		"env invalid":             {invalid, nodeFile, "", []string{PathEnv, invalid, `invalid network mode "mesh"`}},
		"env relative":            {"hostnet.toml", nodeFile, "", []string{PathEnv, "must be an absolute path"}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := loadNode(tc.fromEnv, tc.defaultPath)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("loadNode(%q, %q) = %+v, want an error", tc.fromEnv, tc.defaultPath, c)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Network.DefaultMode != tc.want {
				t.Errorf("default_mode %q, want %q", c.Network.DefaultMode, tc.want)
			}
		})
	}
}

// Options without a hostnet document take the node's, under runc's
// BinaryName and Root; a document in the options replaces it whole.
func TestFromOptionsNodeConfig(t *testing.T) {
	fromNode, fromRunc, fromDoc := filepath.Join(t.TempDir(), "node-runc"), filepath.Join(t.TempDir(), "runc"), filepath.Join(t.TempDir(), "doc-runc")
	for _, p := range []string{fromNode, fromRunc, fromDoc} {
		writeExecutable(t, p)
	}
	t.Setenv(PathEnv, writeFile(t, "hostnet.toml", "[network]\nhardened = true\n[runtime]\nbinary = \""+fromNode+"\"\nroot = \"/run/node\"\nsystemd_cgroup = true\n"))

	type want struct {
		binary, root            string
		systemdCgroup, hardened bool
	}
	for name, tc := range map[string]struct {
		opts proto.Message
		want want
	}{
		"no options":                 {nil, want{fromNode, "/run/node", true, true}},
		"empty runc options":         {&options.Options{}, want{fromNode, "/run/node", true, true}},
		"runc options over the file": {&options.Options{BinaryName: fromRunc, Root: "/run/runc", IoUid: 7}, want{fromRunc, "/run/runc", true, true}},
		"empty runtimeoptions":       {&runtimeoptions.Options{}, want{fromNode, "/run/node", true, true}},
		"ConfigBody replaces it":     {&runtimeoptions.Options{ConfigBody: []byte("[runtime]\nbinary = \"" + fromDoc + "\"\n")}, want{fromDoc, "/run/containerd/hostnet-runc", false, false}},
	} {
		t.Run(name, func(t *testing.T) {
			var a typeurl.Any
			if tc.opts != nil {
				var err error
				if a, err = typeurl.MarshalAnyToProto(tc.opts); err != nil {
					t.Fatal(err)
				}
			}
			const bundle = "/run/b/k8s.io/c1"
			s, err := FromOptions(a, "k8s.io", bundle)
			if err != nil {
				t.Fatal(err)
			}
			got := want{s.Runtime.Binary, s.Runtime.Root, s.Runtime.SystemdCgroup, s.Network.Hardened}
			tc.want.root = ociruntime.StateRoot(tc.want.root, "k8s.io", bundle)
			if got != tc.want {
				t.Errorf("FromOptions: %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A node document that cannot be read or parsed fails every create that
// would use it, naming the file, rather than running with the defaults.
func TestFromOptionsNodeConfigInvalid(t *testing.T) {
	invalid := writeFile(t, "hostnet.toml", "[network]\nhardend = true\n")
	t.Setenv(PathEnv, invalid)
	runc, err := typeurl.MarshalAnyToProto(&options.Options{IoUid: 7})
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]typeurl.Any{"no options": nil, "runc options": runc} {
		_, err := FromOptions(opts, "k8s.io", "/run/b/k8s.io/c1")
		if err == nil || !strings.Contains(err.Error(), invalid) || !strings.Contains(err.Error(), "hardend") {
			t.Errorf("%s: FromOptions error %v, want one naming %s and its unknown key", name, err, invalid)
		}
	}
}
