package initproc

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const procFileChildEnv = "HOSTNET_TEST_PROCFILE_CHILD"

// A write to a procfs file must reach that file even when something in the
// mount namespace covers it with another procfs file, which a path check
// (statfs says procfs) cannot tell apart: here msgmni is bind-mounted over
// shm_rmid_forced (CVE-2025-52881). The child runs in mount and IPC
// namespaces of its own, so the host's values are never touched.
func TestWriteProcFileIgnoresOvermount(t *testing.T) {
	if os.Getenv(procFileChildEnv) != "" {
		procFileChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteProcFileIgnoresOvermount$", "-test.count=1")
	cmd.Env = append(os.Environ(), procFileChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWIPC}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func procFileChild(t *testing.T) {
	const target, other = "/proc/sys/kernel/shm_rmid_forced", "/proc/sys/kernel/msgmni"
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	before := readProc(t, other)
	if err := unix.Mount(other, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := writeProcFile(target, "1"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	if got := readProc(t, other); got != before {
		t.Errorf("the write went to %s (now %s, was %s)", other, got, before)
	}
	if got := readProc(t, target); got != "1" {
		t.Errorf("%s is %s, want 1", target, got)
	}
}

func readProc(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
