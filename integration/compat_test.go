package integration

// Compatibility with another containerd, e.g. 1.7 or 1.6: run with
//
//	HOSTNET_CONTAINERD_BIN=/path/to/containerd [HOSTNET_CTR_BIN=/path/to/ctr]
//
// HOSTNET_CTR_BIN defaults to the ctr next to that containerd, if any. The
// test starts its own private daemon of that binary beside the package's.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// TestCompatOlderContainerd: the basic host-mode lifecycle through another
// containerd's ctr: run to completion with an exit code and the host's
// network namespace, then a detached container with an exec, killed and
// deleted, leaving nothing behind.
func TestCompatOlderContainerd(t *testing.T) {
	bin := os.Getenv("HOSTNET_CONTAINERD_BIN")
	if bin == "" {
		t.Skip("HOSTNET_CONTAINERD_BIN not set")
	}
	ctrBin := os.Getenv("HOSTNET_CTR_BIN")
	if ctrBin == "" {
		if p := filepath.Join(filepath.Dir(bin), "ctr"); fileExists(p) {
			ctrBin = p
		}
	}
	_, version := daemon.Version(bin)
	t.Logf("containerd %s (%s), ctr %s, runtime %s", version, bin, ctrBin, testRuntime)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("hostnet-compat-%d", os.Getpid())
	d, err := daemon.Start(ctx, daemon.Config{
		BinDir:       binDir,
		Containerd:   bin,
		Ctr:          ctrBin,
		Namespace:    ns,
		RuntimeRoots: []string{runtimeRoot},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log:\n%s", d.LogTail(40))
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop compat containerd: %v", err)
		}
	})
	archive := filepath.Join(d.Dir, "busybox.tar")
	if _, err := image.WriteFile(archive, image.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := d.ImportImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
	run := func(extra []string, id string, args ...string) (string, error) {
		a := append([]string{"run", "--fifo-dir", d.FIFODir, "--runtime", testRuntime}, extra...)
		if testRuntime != daemon.HostnetRuntime {
			a = append(a, "--net-host")
		}
		a = append(a, image.DefaultName, id)
		return d.CtrOutput(ctx, append(a, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := d.CtrOutput(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	taskStatus := func(id string) string {
		for _, line := range strings.Split(must("tasks", "ls"), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == id {
				return f[2]
			}
		}
		return ""
	}
	checkGone := func(id string) {
		t.Helper()
		assertNoMounts(t, id)
		if shims, err := d.ShimPids(); err != nil {
			t.Error(err)
		} else if pid, ok := shims[id]; ok {
			t.Errorf("shim pid %d still serves %s", pid, id)
		}
		if _, err := os.Stat(d.TaskDir(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("task bundle %s left (err=%v)", d.TaskDir(id), err)
		}
		if runtimeRoot != "" {
			if _, err := os.Stat(filepath.Join(runtimeRoot, ns, id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("runtime state of %s left (err=%v)", id, err)
			}
		}
		if cgroupExists(t, "/"+ns+"/"+id) {
			t.Errorf("cgroup /%s/%s left", ns, id)
		}
	}

	t.Run("run", func(t *testing.T) {
		id := "compat-run"
		out, err := run([]string{"--rm"}, id, "sh", "-c", "readlink /proc/self/ns/net; exit 3")
		var ce *daemon.CtrError
		if !errors.As(err, &ce) || ce.ExitCode() != 3 {
			t.Fatalf("ctr run: %v, want exit status 3", err)
		}
		hostNet, _ := os.Readlink("/proc/self/ns/net")
		if got := strings.TrimSpace(out); got != hostNet {
			t.Errorf("container's net namespace %q, want the host's %q", got, hostNet)
		}
		checkGone(id)
	})

	t.Run("detached", func(t *testing.T) {
		id := "compat-detached"
		if _, err := run([]string{"--detach"}, id, "sleep", "1000"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for taskStatus(id) != "RUNNING" {
			if time.Now().After(deadline) {
				t.Fatalf("task %s not running: %q", id, taskStatus(id))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out := must("tasks", "exec", "--exec-id", "e1", id, "echo", "hi"); strings.TrimSpace(out) != "hi" {
			t.Errorf("exec printed %q, want hi", out)
		}
		must("tasks", "kill", "--signal", "SIGKILL", id)
		for taskStatus(id) != "STOPPED" {
			if time.Now().After(deadline) {
				t.Fatalf("task %s not stopped after SIGKILL: %q", id, taskStatus(id))
			}
			time.Sleep(50 * time.Millisecond)
		}
		must("tasks", "delete", id)
		must("containers", "delete", id)
		checkGone(id)
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
