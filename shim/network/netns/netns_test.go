package netns

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateRemove(t *testing.T) {
	runtime.LockOSThread() // for /proc/thread-self
	defer runtime.UnlockOSThread()
	path := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() { Remove(path) })
	if err := Create(path); err != nil {
		t.Fatal(err)
	}
	var pinned, self unix.Stat_t
	if err := unix.Stat(path, &pinned); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if pinned.Ino == self.Ino {
		t.Fatal("pinned namespace is the test's own")
	}
	if !mounted(t, path) {
		t.Fatalf("%s is not a mount point", path)
	}
	if err := Create(path); err == nil {
		t.Error("Create over an existing namespace succeeded")
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", path, err)
	}
	if mounted(t, path) {
		t.Errorf("%s is still mounted", path)
	}
	if err := Remove(path); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func mounted(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}
