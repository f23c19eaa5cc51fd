package daemon

import (
	"os/exec"
	"testing"
)

// Stop is safe on a daemon already stopped: stopping it leaves the
// daemon's exit where exited() finds it, so the second neither signals a
// pid that may have been reused nor waits for an exit that already came
// (it blocked for ever, seen in hostnet-bench's cleanup of the traced
// daemon it had stopped before).
func TestStopTwice(t *testing.T) {
	d := &Daemon{
		Dir: t.TempDir(),
		// A stand-in for containerd that SIGTERM ends.
		command: func(string, ...string) *exec.Cmd { return exec.Command("sleep", "600") },
	}
	if err := d.launch(); err != nil {
		t.Fatal(err)
	}
	// Stop's own first step; the rest of the first Stop would ask the
	// stand-in for its containers.
	if err := d.stopDaemon(); err != nil {
		t.Fatal(err)
	}
	if !d.exited() {
		t.Fatal("after Stop, the daemon does not show as exited: a second Stop waits for its exit again")
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}
