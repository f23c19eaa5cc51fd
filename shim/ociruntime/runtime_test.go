package ociruntime

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
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

// TestStateRoot: the containers of one containerd namespace share a state
// root; the same namespace of another containerd (another state directory)
// and another namespace each get their own, below the root the options name.
func TestStateRoot(t *testing.T) {
	bundle := func(state, ns, id string) string {
		return filepath.Join(state, "io.containerd.runtime.v2.task", ns, id)
	}
	a := StateRoot(DefaultRoot, "default", bundle("/run/containerd", "default", "web"))
	if got := StateRoot(DefaultRoot, "default", bundle("/run/containerd", "default", "db")+"/"); got != a {
		t.Errorf("another container of the same containerd namespace: root %s, want %s", got, a)
	}
	if filepath.Dir(a) != DefaultRoot || !strings.HasPrefix(filepath.Base(a), "default@") || len(filepath.Base(a)) != len("default@")+8 {
		t.Errorf("root %s, want %s/default@ and 8 hex digits", a, DefaultRoot)
	}
	for _, other := range []string{
		StateRoot(DefaultRoot, "default", bundle("/var/lib/other/state", "default", "web")),
		StateRoot(DefaultRoot, "k8s.io", bundle("/run/containerd", "k8s.io", "web")),
	} {
		if other == a {
			t.Errorf("another containerd or namespace shares the root %s", a)
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

func TestClassify(t *testing.T) {
	for msg, want := range map[string]error{
		`container "x" does not exist`: errdefs.ErrNotFound,
		"container not running":        errdefs.ErrNotFound,
		"something broke":              nil,
	} {
		if got := classify(msg); !errors.Is(got, want) {
			t.Errorf("classify(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestConfigRecord: the bundle's record of the runtime holds what `shim
// delete` reads, and nothing else.
func TestConfigRecord(t *testing.T) {
	data, err := json.Marshal(Config{Binary: "/bin/r", Root: "/run/r/ns", SystemdCgroup: true, NoPivotRoot: true, NoNewKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"binary":"/bin/r","root":"/run/r/ns","systemd_cgroup":true}`; string(data) != want {
		t.Errorf("record = %s, want %s", data, want)
	}
}
