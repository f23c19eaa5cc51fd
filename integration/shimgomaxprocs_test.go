package integration

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
)

// TestShimServerGOMAXPROCS: the shim server of a container containerd
// started runs with GOMAXPROCS=1 (shim/manager's serverEnv), not the 2
// containerd gives every shim: the first GOMAXPROCS of its environment,
// the one the Go runtime reads, is 1.
func TestShimServerGOMAXPROCS(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("the shim under test is hostnet's")
	}
	id := newID(t)
	startCtrRun(t, id, "sleep", "300")
	fp := takeFootprint(t, id)
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", fp.shimPid))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("GOMAXPROCS=")); ok {
			got = string(v)
			break
		}
	}
	if got != "1" {
		t.Errorf("shim server pid %d runs with GOMAXPROCS=%q, want 1", fp.shimPid, got)
	}
	killTask(id)
}
