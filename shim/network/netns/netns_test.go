package netns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN)")
	}
	path := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() { Remove(path) })
	if err := Create(path); err != nil {
		t.Fatal(err)
	}
	var pinned, self unix.Stat_t
	if err := unix.Stat(path, &pinned); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if pinned.Ino == self.Ino {
		t.Fatal("pinned namespace is the test's own")
	}
	// Do runs in the pinned namespace, and no thread of the test's stays
	// there.
	var inside unix.Stat_t
	if err := Do(path, func() error { return unix.Stat(threadNetNS(), &inside) }); err != nil {
		t.Fatal(err)
	}
	if inside.Ino != pinned.Ino {
		t.Errorf("Do ran in namespace %d, want the pinned %d", inside.Ino, pinned.Ino)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		var st unix.Stat_t
		if unix.Stat(task, &st) == nil && st.Ino == pinned.Ino {
			t.Errorf("thread %s is still in the pinned namespace", task)
		}
	}
	if err := Do(filepath.Join(t.TempDir(), "none"), func() error { return nil }); err == nil {
		t.Error("Do in a namespace that does not exist succeeded")
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
