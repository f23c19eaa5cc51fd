package network

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/spec"
)

// readOnlyRoot makes a root file system with /etc/hosts, a dangling
// /etc/resolv.conf symlink and no /etc/hostname, bind-mounted read-only
// onto itself; without root it is left writable and ro is false.
func readOnlyRoot(t *testing.T) (root string, ro bool) {
	t.Helper()
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hosts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Dangling, and pointing out of the root: it resolves inside it.
	if err := os.Symlink("/../run/resolve/stub-resolv.conf", filepath.Join(root, "etc", "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return root, false
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	if err := unix.Mount("", root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	return root, true
}

func TestMountableHostFiles(t *testing.T) {
	root, ro := readOnlyRoot(t)
	files := []spec.HostFile{
		{Source: "/host/hosts", Destination: "/etc/hosts"},
		{Source: "/host/resolv.conf", Destination: "/etc/resolv.conf"},
		{Source: "/host/hostname", Destination: "/etc/hostname"},
	}
	dests := func(fs []spec.HostFile) []string {
		var d []string
		for _, f := range fs {
			d = append(d, f.Destination)
		}
		return d
	}
	bundle := filepath.Dir(root)
	relative := filepath.Base(root)

	for _, tc := range []struct {
		name   string
		mounts []specs.Mount
		want   []string
	}{
		// A mount point that exists is kept; one the runtime would have
		// to create on the read-only root is not, also behind a symlink.
		{name: "read-only", want: []string{"/etc/hosts"}},
		// A spec mount above the mount point decides, not the root.
		{name: "tmpfs on /run", mounts: []specs.Mount{{Destination: "/run", Type: "tmpfs"}},
			want: []string{"/etc/hosts", "/etc/resolv.conf"}},
		{name: "tmpfs on /etc", mounts: []specs.Mount{{Destination: "/etc/", Type: "tmpfs"}},
			want: []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}},
		// The spec's own mount there is left to AddHostFiles, unwarned.
		{name: "spec mounts it", mounts: []specs.Mount{{Destination: "/etc/hostname", Type: "bind"}},
			want: []string{"/etc/hosts", "/etc/hostname"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{Root: &specs.Root{Path: relative}, Mounts: tc.mounts}
			ok, warnings := mountableHostFiles(s, bundle, files)
			want := tc.want
			if !ro {
				want = dests(files) // a writable root can take them all
			}
			if got := dests(ok); !slices.Equal(got, want) {
				t.Errorf("mountable = %v, want %v", got, want)
			}
			if len(warnings) != len(files)-len(want) {
				t.Errorf("warnings %q for %d files left out", warnings, len(files)-len(want))
			}
			for _, w := range warnings {
				if !strings.Contains(w, "read-only") {
					t.Errorf("warning %q does not say why", w)
				}
			}
		})
	}

	t.Run("no root", func(t *testing.T) {
		if ok, warnings := mountableHostFiles(&specs.Spec{}, bundle, files); len(ok) != len(files) || warnings != nil {
			t.Errorf("without a root: %v, %v", ok, warnings)
		}
	})
}
