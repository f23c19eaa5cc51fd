package manager

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf/proto"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/typeurl/v2"

	"github.com/hostnet-dev/hostnet/shim/bundle"
)

// childShimEnv makes the test binary run Run with a fakeShim instead of
// the tests: TestRunDispatch executes it as containerd executes a shim.
const childShimEnv = "HOSTNET_TEST_CHILD_SHIM"

// childAddress is what the child's fakeShim answers Start with.
const childAddress = "unix:///run/containerd/s/child"

func TestMain(m *testing.M) {
	if os.Getenv(childShimEnv) == "1" {
		Run(context.Background(), &fakeShim{
			result: &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: childAddress},
			record: "params.pb",
		})
	}
	os.Exit(m.Run())
}

// legacyArgs is the command line containerd 1.7 and 2.0 to 2.2 run `start`
// with (runtime/v2/shim.Command, pkg/shim.Command): containerd 2.3 runs the
// same one and differs only on stdin.
var legacyArgs = []string{
	"-namespace", "k8s.io",
	"-address", "/run/containerd/containerd.sock",
	"-publish-binary", "/usr/bin/containerd",
	"-id", "c1", "-debug", "start",
}

func TestParseInvocation(t *testing.T) {
	inv, ok := parseInvocation(legacyArgs)
	want := invocation{namespace: "k8s.io", id: "c1", address: "/run/containerd/containerd.sock",
		publishBinary: "/usr/bin/containerd", debug: true, action: "start"}
	if !ok || inv != want {
		t.Errorf("parseInvocation = %+v, %v; want %+v", inv, ok, want)
	}
	// `delete` as containerd runs it, with -bundle.
	inv, ok = parseInvocation([]string{"-namespace", "n", "-address", "a", "-publish-binary", "b", "-id", "c1", "-bundle", "/x", "delete"})
	if !ok || inv.action != "delete" || inv.bundle != "/x" {
		t.Errorf("parseInvocation(delete) = %+v, %v", inv, ok)
	}
	if _, ok := parseInvocation([]string{"-no-such-flag", "start"}); ok {
		t.Error("parseInvocation accepted an unknown flag; pkg/shim must report it")
	}
}

func runtimeOptions(t *testing.T) []byte {
	t.Helper()
	opts, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "my-runc", Root: "/run/my"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestIsBootstrapParams(t *testing.T) {
	inv, _ := parseInvocation(legacyArgs)
	marshal := func(p *bootapi.BootstrapParams) []byte {
		data, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, tc := range []struct {
		name  string
		input []byte
		want  bool
	}{
		{"containerd 2.3+", marshal(&bootapi.BootstrapParams{InstanceID: "c1", Namespace: "k8s.io", ContainerdGrpcAddress: "a"}), true},
		{"nothing (no runtime options)", nil, false},
		{"runtime options", runtimeOptions(t), false},
		{"another container's parameters", marshal(&bootapi.BootstrapParams{InstanceID: "c2", Namespace: "k8s.io"}), false},
		{"another namespace's parameters", marshal(&bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default"}), false},
		{"garbage", []byte{0xff, 0xff, 0xff}, false},
	} {
		if got := isBootstrapParams(tc.input, inv); got != tc.want {
			t.Errorf("%s: isBootstrapParams = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fakeShim records what Start got, also in the file record if set, and
// answers with result.
type fakeShim struct {
	result    *bootapi.BootstrapResult
	record    string
	params    *bootapi.BootstrapParams
	namespace string
	opts      shim.Opts
}

func (f *fakeShim) Name() string { return RuntimeName }
func (f *fakeShim) Start(ctx context.Context, p *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	f.params = p
	f.namespace, _ = namespaces.Namespace(ctx)
	f.opts, _ = ctx.Value(shim.OptsKey{}).(shim.Opts)
	if f.record != "" {
		data, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(f.record, data, 0o600); err != nil {
			return nil, err
		}
	}
	return f.result, nil
}
func (f *fakeShim) Stop(context.Context, string) (shim.StopStatus, error) {
	return shim.StopStatus{}, nil
}
func (f *fakeShim) Info(context.Context, io.Reader) (*types.RuntimeInfo, error) {
	return nil, errors.New("not implemented")
}

// TestLegacyStart: the start of containerd 1.7 and 2.0 to 2.2 reaches the
// manager with the parameters containerd 2.3 would have sent, prints the
// bare address (task API v2, which all of them take) and leaves it in the
// bundle's address file, where containerd 1.7 finds it after a restart.
func TestLegacyStart(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("TTRPC_ADDRESS", "/run/containerd/containerd.sock.ttrpc")
	const address = "unix:///run/containerd/s/0123abcd"
	m := &fakeShim{result: &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: address}}
	inv, _ := parseInvocation(legacyArgs)
	var stdout bytes.Buffer
	if err := legacyStart(context.Background(), m, inv, runtimeOptions(t), &stdout); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != address {
		t.Errorf("printed %q, want the bare address %q", stdout.String(), address)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "address")); err != nil || string(data) != address {
		t.Errorf("address file: %q, %v; want %q", data, err, address)
	}
	if got := bundle.New(dir).ShimAddress(); got != address {
		t.Errorf("shimAddress from the address file = %q, want %q", got, address)
	}
	p := m.params
	if p.GetInstanceID() != "c1" || p.GetNamespace() != "k8s.io" || p.GetContainerdGrpcAddress() != "/run/containerd/containerd.sock" ||
		p.GetContainerdTtrpcAddress() != "/run/containerd/containerd.sock.ttrpc" || p.GetContainerdBinary() != "/usr/bin/containerd" ||
		p.GetLogLevel() != bootapi.LogLevel_LOG_LEVEL_DEBUG || p.SocketDir != nil {
		t.Errorf("Start got %v", p)
	}
	var opts options.Options
	if found, err := p.FindExtension(&opts); !found || err != nil || opts.BinaryName != "my-runc" || opts.Root != "/run/my" {
		t.Errorf("runtime options extension: found=%v err=%v opts=%v", found, err, &opts)
	}
	if m.namespace != "k8s.io" || !m.opts.Debug {
		t.Errorf("Start's context: namespace %q, opts %+v", m.namespace, m.opts)
	}

	// Without -debug and without runtime options.
	noDebug := append([]string(nil), legacyArgs...)
	noDebug = append(noDebug[:len(noDebug)-2], "start")
	inv, _ = parseInvocation(noDebug)
	if err := legacyStart(context.Background(), m, inv, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m.params.GetLogLevel() != bootapi.LogLevel_LOG_LEVEL_INFO || len(m.params.GetExtensions()) != 0 {
		t.Errorf("Start without -debug or options got %v", m.params)
	}
}

func TestLegacyStartRejects(t *testing.T) {
	t.Chdir(t.TempDir())
	inv, _ := parseInvocation(legacyArgs)
	m := &fakeShim{result: &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: "unix:///x"}}
	if err := legacyStart(context.Background(), m, inv, []byte("not protobuf"), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "neither bootstrap parameters nor runtime options") {
		t.Errorf("legacyStart with garbage on stdin: %v", err)
	}
	if m.params != nil {
		t.Error("the manager was started with garbage on stdin")
	}
	inv.namespace = ""
	if err := legacyStart(context.Background(), m, inv, nil, io.Discard); err == nil {
		t.Error("legacyStart without a namespace succeeded")
	}
	inv, _ = parseInvocation(legacyArgs)
	m.result.Protocol = "grpc"
	if err := legacyStart(context.Background(), m, inv, nil, io.Discard); err == nil {
		t.Error("legacyStart passed a grpc address to containerd before 2.3")
	}
}

// TestReplayStdin: pkg/shim reads the bootstrap parameters Run read
// first, also ones larger than a pipe's buffer.
func TestReplayStdin(t *testing.T) {
	saved := os.Stdin
	t.Cleanup(func() {
		os.Stdin.Close()
		os.Stdin = saved
	})
	input := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	if err := replayStdin(input); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(os.Stdin)
	if err != nil || !bytes.Equal(got, input) {
		t.Errorf("read %d bytes back (err %v), want the %d given", len(got), err, len(input))
	}
}

// TestRunDispatch runs the shim binary's entry point as containerd does:
// with containerd 2.3's BootstrapParams on stdin, pkg/shim answers with a
// BootstrapResult; with older containerd's runtime options or nothing, the
// legacy start answers with the bare address; with anything else, the
// start fails naming the problem.
func TestRunDispatch(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, stdin []byte) (bundle string, stdout []byte, err error) {
		bundle = t.TempDir()
		args := append(legacyArgs[:len(legacyArgs)-2:len(legacyArgs)-2], "start")
		cmd := exec.Command(self, args...)
		cmd.Dir = bundle
		cmd.Env = append(os.Environ(), childShimEnv+"=1", "TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc")
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err = cmd.Output()
		if err != nil {
			err = errors.Join(err, errors.New(stderr.String()))
		}
		return bundle, stdout, err
	}
	recorded := func(t *testing.T, bundle string) *bootapi.BootstrapParams {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(bundle, "params.pb"))
		if err != nil {
			t.Fatalf("the manager was not started: %v", err)
		}
		var p bootapi.BootstrapParams
		if err := proto.Unmarshal(data, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}

	t.Run("bootstrap", func(t *testing.T) {
		socketDir := "/run/containerd/s"
		in, err := proto.Marshal(&bootapi.BootstrapParams{InstanceID: "c1", Namespace: "k8s.io",
			ContainerdGrpcAddress: "/run/containerd/containerd.sock", SocketDir: &socketDir})
		if err != nil {
			t.Fatal(err)
		}
		bundle, out, err := run(t, in)
		if err != nil {
			t.Fatal(err)
		}
		var res bootapi.BootstrapResult
		if err := proto.Unmarshal(out, &res); err != nil || res.GetAddress() != childAddress || res.GetVersion() != 3 {
			t.Errorf("stdout %q is not the BootstrapResult for %s (%v)", out, childAddress, err)
		}
		if p := recorded(t, bundle); p.GetSocketDir() != socketDir || p.GetContainerdTtrpcAddress() != "" {
			t.Errorf("the manager got %v, not containerd's parameters", p)
		}
		// pkg/shim's own start: it links the socket dir, and writes no address file.
		if dir, err := os.Readlink(filepath.Join(bundle, "s")); err != nil || dir != socketDir {
			t.Errorf("socket dir link: %q, %v", dir, err)
		}
		if _, err := os.Stat(filepath.Join(bundle, "address")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("address file written under the bootstrap protocol (err=%v)", err)
		}
	})
	for name, in := range map[string][]byte{"legacy": nil, "legacy with options": runtimeOptions(t)} {
		t.Run(name, func(t *testing.T) {
			bundle, out, err := run(t, in)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != childAddress {
				t.Errorf("stdout %q, want the bare address %q", out, childAddress)
			}
			if p := recorded(t, bundle); p.GetContainerdTtrpcAddress() != "/run/containerd/containerd.sock.ttrpc" || p.GetInstanceID() != "c1" {
				t.Errorf("the manager got %v", p)
			}
			if data, err := os.ReadFile(filepath.Join(bundle, "address")); err != nil || string(data) != childAddress {
				t.Errorf("address file %q, %v", data, err)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		bundle, _, err := run(t, []byte("not protobuf"))
		if err == nil || !strings.Contains(err.Error(), "neither bootstrap parameters nor runtime options") {
			t.Errorf("start with garbage on stdin: %v", err)
		}
		if _, err := os.Stat(filepath.Join(bundle, "params.pb")); !errors.Is(err, os.ErrNotExist) {
			t.Error("the manager was started with garbage on stdin")
		}
	})
}
