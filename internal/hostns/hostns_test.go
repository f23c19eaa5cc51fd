package hostns

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestIsNetNS(t *testing.T) {
	for _, p := range []string{"/proc/self/ns/net", "/proc/thread-self/ns/net"} { // procfs-literal: the test's own namespace
		if host, err := IsNetNS(p); err != nil || !host {
			t.Errorf("IsNetNS(%s) = %v, %v, want true", p, host, err)
		}
	}
	// Another namespace type: its nsfs inode differs.
	if host, err := IsNetNS("/proc/self/ns/mnt"); err != nil || host { // procfs-literal: the test's own namespace
		t.Errorf("IsNetNS(mnt ns) = %v, %v, want false", host, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if host, err := IsNetNS(file); err != nil || host {
		t.Errorf("IsNetNS(file) = %v, %v, want false", host, err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := IsNetNS(missing); !errors.Is(err, os.ErrNotExist) || err.Error() != "stat "+missing+": no such file or directory" {
		t.Errorf("IsNetNS(missing): %v, want a stat error naming it", err)
	}
}
