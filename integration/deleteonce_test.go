package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
)

// TestRuntimeDeletedOnce: containerd 2.x runs `shim delete` after every
// task delete (the ttrpc connection's close, cleanupAfterDeadShim) and
// waits for it. Once the shim's own delete has removed the runtime's state,
// that `shim delete` must not exec the runtime again (an exec of
// `hostnet-runc delete --force` on every container's critical path). The
// runtime here is a wrapper that records each call; a SIGKILLed shim's
// `shim delete` still deletes the runtime's state (TestShimCrash).
func TestRuntimeDeletedOnce(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("hostnet's shim only")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	wrapper := filepath.Join(dir, "hostnet-runc-recording")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", calls, filepath.Join(binDir, "hostnet-runc"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "runtime.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[runtime]\nbinary = %q\n", wrapper), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	id := newID(t)
	if _, err := testDaemon.CtrOutput(ctx, ctrRunArgs([]string{"--rm", "--runtime-config-path", cfg}, id, "true")...); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	var deletes []string
	for l := range strings.Lines(string(data)) {
		if slices.Contains(strings.Fields(l), "delete") {
			deletes = append(deletes, strings.TrimSpace(l))
		}
	}
	if len(deletes) != 1 {
		t.Errorf("the runtime was asked to delete %s %d times, want once:\n%s", id, len(deletes), strings.Join(deletes, "\n"))
	}
}
