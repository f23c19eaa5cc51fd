package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/internal/systest"
)

// pivot_root(".", ".") from inside the new root, then the old root, which
// is stacked under it, is made rslave before it is detached, so that the
// unmount does not propagate to the host.
func TestPivotRoot(t *testing.T) {
	root, rec := newRoot(t)
	if err := PivotRoot(rec, root); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), []string{
		"fchdir /",
		"pivot_root . .",
		"fchdir host:/",
		"mount none on . (MS_REC|MS_SLAVE)",
		"umount2 . MNT_DETACH",
		"chdir /",
	})
}

// --no-pivot moves the rootfs over / and chroots into it.
func TestMoveRoot(t *testing.T) {
	root, rec := newRoot(t)
	if err := MoveRoot(rec, root); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), []string{
		"chdir /",
		"mount / on host:/ (MS_MOVE)",
		"chroot .",
		"chdir /",
	})
}

// Sharing the host's mount namespace, only a chroot: nothing is mounted.
func TestChroot(t *testing.T) {
	root, rec := newRoot(t)
	if err := Chroot(rec, root); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), []string{"chdir /", "chroot .", "chdir /"})
}

// finalizeRoot makes a pivoted root with the files masked and read-only
// paths name. Its /dev/null leads to the host's null device, the only one
// a test without root can have.
func finalizeRoot(t *testing.T, files ...string) (string, *systest.Recorder) {
	t.Helper()
	root, rec := newRoot(t)
	mkfile(t, root, files...)
	mkfile(t, root, "dev/")
	if err := os.Symlink("/dev/null", filepath.Join(root, "dev/null")); err != nil {
		t.Fatal(err)
	}
	if err := rec.Chroot("."); err != nil {
		t.Fatal(err)
	}
	return root, rec
}

// Read-only paths first, each a read-only copy of itself made before it
// is attached; then masked paths, each directory under a read-only tmpfs
// of its own and each file under /dev/null; the read-only root last.
// Paths the image does not have are skipped.
func TestFinalize(t *testing.T) {
	_, rec := finalizeRoot(t, "proc/sys/", "proc/sysrq-trigger", "proc/acpi/", "proc/kcore", "proc/scsi/", "proc/keys")
	s := &specs.Spec{Root: &specs.Root{Readonly: true}, Linux: &specs.Linux{
		ReadonlyPaths: []string{"/proc/sys", "/proc/missing", "/proc/sysrq-trigger"},
		MaskedPaths:   []string{"/proc/acpi", "/proc/kcore", "/proc/nothere", "/proc/scsi", "/proc/keys"},
	}}
	if err := Finalize(rec, s); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), []string{
		"chroot .",
		"open_tree /proc/sys recursive",
		"mount_setattr tree:/proc/sys set=RDONLY",
		"move_mount tree:/proc/sys on /proc/sys",
		"open_tree /proc/sysrq-trigger recursive",
		"mount_setattr tree:/proc/sysrq-trigger set=RDONLY",
		"move_mount tree:/proc/sysrq-trigger on /proc/sysrq-trigger",
		"fsopen tmpfs",
		"fsconfig create fs:tmpfs",
		"fsmount tmpfs RDONLY|NOSUID|NODEV|NOEXEC",
		"move_mount tmpfs on /proc/acpi",
		"open_tree host:/dev/null",
		"move_mount tree:host:/dev/null on /proc/kcore",
		"fsopen tmpfs",
		"fsconfig create fs:tmpfs",
		"fsmount tmpfs RDONLY|NOSUID|NODEV|NOEXEC",
		"move_mount tmpfs on /proc/scsi",
		"open_tree host:/dev/null",
		"move_mount tree:host:/dev/null on /proc/keys",
		"mount_setattr / set=RDONLY",
	})
}

// Without open_tree(2) and fsopen(2) (before Linux 5.2), the same through
// mount(2) and the descriptors' /proc/self/fd links.
func TestFinalizeWithoutMountAPI(t *testing.T) {
	_, rec := finalizeRoot(t, "proc/sys/", "proc/acpi/", "proc/kcore")
	rec.Fail = map[string]error{"open_tree": unix.ENOSYS, "fsopen": unix.ENOSYS, "mount_setattr": unix.ENOSYS}
	s := &specs.Spec{Root: &specs.Root{Readonly: true}, Linux: &specs.Linux{
		ReadonlyPaths: []string{"/proc/sys"},
		MaskedPaths:   []string{"/proc/acpi", "/proc/kcore"},
	}}
	if err := Finalize(rec, s); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	// A remount keeps the flags statfs reports, which depend on the
	// test's filesystem: only the ones asked for are checked.
	for i, c := range calls {
		if rest, ok := strings.CutPrefix(c, "mount none on "); ok && strings.Contains(rest, "MS_RDONLY|") && strings.Contains(rest, "|MS_REMOUNT|MS_BIND") {
			calls[i] = "mount none on " + strings.SplitN(rest, " ", 2)[0] + " (read-only bind remount)"
		}
	}
	systest.CheckCalls(t, calls, []string{
		"chroot .",
		"open_tree /proc/sys recursive = ENOSYS",
		"mount /proc/sys on /proc/sys (MS_BIND|MS_REC)",
		"mount none on /proc/sys (read-only bind remount)",
		"fsopen tmpfs = ENOSYS",
		"mount tmpfs on /proc/acpi type tmpfs (MS_RDONLY)",
		"open_tree host:/dev/null = ENOSYS",
		"mount host:/dev/null on /proc/kcore (MS_BIND)",
		"mount_setattr / set=RDONLY = ENOSYS",
		"mount none on / (read-only bind remount)",
	})
}

// A /dev/null that is not the null device is never bound over a masked
// file (CVE-2025-31133): the image's file would be readable through it.
func TestFinalizeRefusesFakeDevNull(t *testing.T) {
	root, rec := newRoot(t)
	mkfile(t, root, "proc/kcore", "dev/null")
	s := &specs.Spec{Linux: &specs.Linux{MaskedPaths: []string{"/proc/kcore"}}}
	err := Finalize(rec, s)
	if err == nil || !strings.Contains(err.Error(), "not the null device") {
		t.Fatalf("error %v, want one saying /dev/null is not the null device", err)
	}
	systest.CheckCalls(t, rec.Calls(), nil)
}

// A masked or read-only path resolves in the root: an image's symlink to
// a host path leads to that path in the root.
func TestFinalizeStaysInRoot(t *testing.T) {
	outside := t.TempDir()
	_, rec := finalizeRoot(t, "etc/", outside+"/")
	if err := os.Symlink(outside, filepath.Join(rec.Root, "etc/escape")); err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{Linux: &specs.Linux{ReadonlyPaths: []string{"/etc/escape"}}}
	if err := Finalize(rec, s); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), []string{
		"chroot .",
		"open_tree " + outside + " recursive",
		"mount_setattr tree:" + outside + " set=RDONLY",
		"move_mount tree:" + outside + " on " + outside,
	})
}
