package task

import (
	"context"
	"os"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
)

// TestTeardownTwice: Teardown unmounts the root file system and, run again
// with nothing left to undo (no mount, no runtime state, no network record),
// succeeds.
func TestTeardownTwice(t *testing.T) {
	needContainers(t)
	b := bundle.New(t.TempDir())
	if err := os.Mkdir(b.Rootfs(), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", b.Rootfs(), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(b.Rootfs(), unix.MNT_DETACH) })
	rt := ociruntime.New(ociruntime.Config{Binary: runtimeBinary, Root: t.TempDir()}, b.RuntimeLog())
	for i := range 2 {
		if err := Teardown(context.Background(), b, "gone", rt, true); err != nil {
			t.Fatalf("Teardown %d: %v", i+1, err)
		}
		if mounted, err := mountinfo.Mounted(b.Rootfs()); err != nil || mounted {
			t.Fatalf("after Teardown %d the rootfs is mounted: %v, %v", i+1, mounted, err)
		}
	}
}
