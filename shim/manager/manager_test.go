package manager

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	runc "github.com/containerd/go-runc"

	"github.com/hostnet-dev/hostnet/shim/bundle"
)

func TestGroupID(t *testing.T) {
	for _, tc := range []struct {
		name, spec, want string
	}{
		{name: "alone", spec: `{"annotations":{"other":"x"}}`, want: "c1"},
		{name: "no annotations", spec: `{}`, want: "c1"},
		{name: "pod", spec: `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}`, want: "pod1"},
		{name: "group wins", spec: `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1","io.containerd.runc.v2.group":"g"}}`, want: "g"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := groupID(bundle.New(dir), "c1")
			if err != nil || got != tc.want {
				t.Errorf("groupID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := groupID(bundle.New(t.TempDir()), "c1"); err == nil {
		t.Error("groupID without a spec succeeded")
	}
}

func TestServerEnv(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env, want []string
	}{
		{name: "unset", env: []string{"PATH=/bin", "TTRPC_ADDRESS=/run/c.sock.ttrpc"},
			want: []string{"PATH=/bin", "TTRPC_ADDRESS=/run/c.sock.ttrpc", "GOMAXPROCS=1"}},
		// What containerd passes every shim (core/runtime/v2's command).
		{name: "containerd's", env: []string{"PATH=/bin", "GOMAXPROCS=2", "NAMESPACE=default"},
			want: []string{"PATH=/bin", "NAMESPACE=default", "GOMAXPROCS=1"}},
		{name: "empty", env: []string{"GOMAXPROCS="}, want: []string{"GOMAXPROCS=1"}},
		// An operator's, which containerd passes on instead of its own.
		{name: "operator's", env: []string{"GOMAXPROCS=4", "PATH=/bin"}, want: []string{"GOMAXPROCS=4", "PATH=/bin"}},
	} {
		if got := serverEnv(tc.env); !slices.Equal(got, tc.want) {
			t.Errorf("%s: serverEnv(%q) = %q, want %q", tc.name, tc.env, got, tc.want)
		}
	}
}

// TestServerCommandGOMAXPROCS checks the server's command: this binary,
// in the bundle, with serverEnv's environment.
func TestServerCommandGOMAXPROCS(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2") // as containerd starts shims
	ctx := namespaces.WithNamespace(context.Background(), "hostnet-test")
	cmd, err := serverCommand(ctx, "c1", "/run/containerd.sock", false)
	if err != nil {
		t.Fatal(err)
	}
	var set []string
	for _, kv := range cmd.Env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			set = append(set, kv)
		}
	}
	if !slices.Equal(set, []string{"GOMAXPROCS=1"}) {
		t.Errorf("server environment sets %q, want GOMAXPROCS=1", set)
	}
	if !slices.Equal(cmd.Args[1:], []string{"-namespace", "hostnet-test", "-id", "c1", "-address", "/run/containerd.sock"}) {
		t.Errorf("server args = %q", cmd.Args)
	}
}

// TestStopWithoutRuntimeConfig is `shim delete` for a shim that died before
// it wrote its runtime config: nothing to ask the runtime, and the exit is
// the one recorded if there is one, else SIGKILL's.
func TestStopWithoutRuntimeConfig(t *testing.T) {
	dir := t.TempDir()
	ctx := namespaces.WithNamespace(context.Background(), "hostnet-test")
	ctx = context.WithValue(ctx, shim.OptsKey{}, shim.Opts{BundlePath: dir})
	m := New(RuntimeName)

	if err := os.WriteFile(bundle.New(dir).InitPidFile(), []byte("4242"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := m.Stop(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitStatus != 137 || st.Pid != 4242 || st.ExitedAt.IsZero() {
		t.Errorf("Stop without a recorded exit = %+v, want status 137 of pid 4242", st)
	}

	at := time.Unix(1700000000, 0).UTC()
	if err := bundle.New(dir).WriteExit(runc.Exit{Pid: 4242, Status: 3, Timestamp: at}); err != nil {
		t.Fatal(err)
	}
	st, err = m.Stop(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitStatus != 3 || st.Pid != 4242 || !st.ExitedAt.Equal(at) {
		t.Errorf("Stop with a recorded exit = %+v", st)
	}
}
