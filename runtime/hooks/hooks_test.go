package hooks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunPassesStateAndArgs(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	h := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `cat > "$1"; echo >> "$1"; echo "$FOO" >> "$1"`, "hook", out}, Env: []string{"FOO=bar"}}
	state := &specs.State{Version: "1.3.0", ID: "c1", Status: specs.StateCreating, Pid: 42, Bundle: "/b"}
	if err := Run("createRuntime", []specs.Hook{h}, state); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(data), "\n", 2)
	var got specs.State
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("hook stdin %q is not the state: %v", lines[0], err)
	}
	if got.ID != "c1" || got.Pid != 42 || got.Status != specs.StateCreating {
		t.Errorf("state = %+v", got)
	}
	if strings.TrimSpace(lines[1]) != "bar" {
		t.Errorf("hook env FOO = %q, want bar", lines[1])
	}
}

func TestRunFailureAndTimeout(t *testing.T) {
	state := &specs.State{ID: "c1"}
	err := Run("prestart", []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo boom >&2; exit 3"}}}, state)
	if err == nil || !strings.Contains(err.Error(), "error running prestart hook #0 (/bin/sh): exit status 3, output: boom") {
		t.Errorf("failing hook: err = %v", err)
	}
	one := 1
	err = Run("poststart", []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Timeout: &one}}, state)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Errorf("slow hook: err = %v", err)
	}
	zero := 0
	if err := Run("poststop", []specs.Hook{{Path: "/bin/true", Timeout: &zero}}, state); err == nil {
		t.Error("zero timeout accepted")
	}
}
