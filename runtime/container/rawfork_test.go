//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64)

package container

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// dumpableFdEnv, set in a process forkExec started from this test binary,
// names the descriptor it reports its dumpability on, first thing.
const dumpableFdEnv = "HOSTNET_TEST_DUMPABLE_FD"

func TestMain(m *testing.M) {
	if fd := os.Getenv(dumpableFdEnv); fd != "" {
		n, _ := strconv.Atoi(fd)
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		f := os.NewFile(uintptr(n), "report")
		fmt.Fprintln(f, d, err)
		f.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestForkExecNonDumpable: a process forkExec starts from an execute-only
// (0111) binary, as the init is started from the sealed copy, is
// non-dumpable from the exec on, even when root starts it (root's DAC
// override would let the kernel read the file, and leave the process
// dumpable until its main could say otherwise). A readable copy of the
// same binary shows that the test can tell: it runs dumpable.
func TestForkExecNonDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: root's read override is what is tested")
	}
	if v, err := os.ReadFile("/proc/sys/fs/suid_dumpable"); err != nil || strings.TrimSpace(string(v)) != "0" {
		t.Skipf("fs.suid_dumpable is %q (%v), not 0: an unreadable binary's process is dumpable there by the admin's choice", v, err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		mode     os.FileMode
		dumpable string
	}{{0o111, "0"}, {0o755, "1"}} {
		t.Run(c.mode.String(), func(t *testing.T) {
			bin := filepath.Join(dir, "bin-"+strconv.FormatUint(uint64(c.mode), 8))
			copyFile(t, self, bin, c.mode)
			exe, err := os.OpenFile(bin, unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer exe.Close()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := forkExec(&forkSpec{
				exe:  exe,
				argv: []string{bin},
				env:  []string{dumpableFdEnv + "=" + strconv.Itoa(int(w.Fd()))},
				keep: []*os.File{w},
			})
			w.Close()
			if err != nil {
				t.Fatalf("forkExec: %v", err)
			}
			out, err := io.ReadAll(r)
			if _, werr := p.Wait(); werr != nil {
				t.Errorf("wait: %v", werr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(out)); len(got) == 0 || got[0] != c.dumpable {
				t.Errorf("PR_GET_DUMPABLE of a process exec'd from a %v binary by root = %q, want %s", c.mode, out, c.dumpable)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}
