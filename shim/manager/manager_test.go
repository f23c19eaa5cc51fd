package manager

import (
	"context"
	"os"
	"path/filepath"
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
