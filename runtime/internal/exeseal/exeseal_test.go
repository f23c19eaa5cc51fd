package exeseal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is a Go binary with a build ID of its own: it seals
// itself as hostnet-runc does.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the copy is root's and the overlay needs CAP_SYS_ADMIN")
	}
}

// sealed calls Executable on root and fails unless it returns the copy
// through an overlay.
func sealed(t *testing.T, root string) *os.File {
	t.Helper()
	var why []string
	exe, err := Executable(root, func(f string, a ...any) { why = append(why, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exe.Close() })
	assertSealed(t, exe)
	if len(why) > 0 && strings.Contains(strings.Join(why, "\n"), "memfd") {
		t.Fatalf("fell back to a memfd: %s", why)
	}
	return exe
}

// assertSealed checks what the init's executable must be: execute-only,
// root's, on a read-only overlay, not openable for writing.
func assertSealed(t *testing.T, exe *os.File) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(exe.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != ExeMode || st.Uid != 0 {
		t.Errorf("executable has mode %#o uid %d, want a regular file, %#o, root's", st.Mode, st.Uid, ExeMode)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(exe.Fd()), &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.OVERLAYFS_SUPER_MAGIC || fs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("executable is on filesystem %#x with flags %#x, want a read-only overlay", fs.Type, fs.Flags)
	}
	path := "/proc/self/fd/" + strconv.Itoa(int(exe.Fd()))
	for _, flags := range []int{os.O_WRONLY, os.O_RDWR | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		f, err := os.OpenFile(path, flags, 0)
		if err == nil {
			f.Close()
			t.Fatalf("the sealed executable could be opened with flags %#x", flags)
		}
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("open with flags %#x failed with %v, want EROFS", flags, err)
		}
	}
}

// theCopy returns the path and stat of the one copy under root.
func theCopy(t *testing.T, root string) (string, unix.Stat_t) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(root, DirName, BinDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || !strings.HasPrefix(filepath.Base(names[0]), CopyPrefix) {
		t.Fatalf("want exactly one copy in %s, have %q", filepath.Join(root, DirName, BinDir), names)
	}
	var st unix.Stat_t
	if err := unix.Lstat(names[0], &st); err != nil {
		t.Fatal(err)
	}
	return names[0], st
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The copy is made on first use and reused after: same file, same inode,
// not written again.
func TestSealedOnce(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	first := sealed(t, root)
	path, st := theCopy(t, root)
	if st.Mode&0o7777 != ExeMode || st.Uid != 0 || st.Nlink != 1 {
		t.Errorf("copy %s has mode %#o uid %d nlink %d", path, st.Mode, st.Uid, st.Nlink)
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != self.Size() {
		t.Errorf("copy has %d bytes, the binary %d", st.Size, self.Size())
	}
	for _, d := range []string{DirName, filepath.Join(DirName, BinDir), filepath.Join(DirName, emptyDir)} {
		fi, err := os.Lstat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want a 0700 directory", d, fi.Mode())
		}
	}
	if ino := inode(t, first); ino != st.Ino {
		t.Errorf("the overlay shows inode %d, the copy is %d", ino, st.Ino)
	}
	second := sealed(t, root)
	_, again := theCopy(t, root)
	if again.Ino != st.Ino || again.Mtim != st.Mtim || again.Ctim != st.Ctim {
		t.Errorf("the copy was made again: inode %d → %d, ctime %v → %v", st.Ino, again.Ino, st.Ctim, again.Ctim)
	}
	if ino := inode(t, second); ino != st.Ino {
		t.Errorf("the second use sees inode %d, the copy is %d", ino, st.Ino)
	}
}

// Two runtimes on a fresh state root both get the sealed copy, and one
// copy is left, with no temporary file.
func TestSealedConcurrentFirstUse(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			var why []string
			exe, err := Executable(root, func(f string, a ...any) { why = append(why, fmt.Sprintf(f, a...)) })
			if err == nil {
				var fs unix.Statfs_t
				if err = unix.Fstatfs(int(exe.Fd()), &fs); err == nil && fs.Type != unix.OVERLAYFS_SUPER_MAGIC {
					err = fmt.Errorf("not the overlay: %s", why)
				}
				exe.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	theCopy(t, root)
}

// A copy that is not root's, has another mode, size or build ID, more than
// one link, or is not a regular file is never used: it is replaced by a
// new copy, which is then the one exec'd.
func TestTamperedCopyReplaced(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, path string)
	}{
		{"not root's", func(t *testing.T, path string) { chown(t, path, 1000) }},
		{"readable", func(t *testing.T, path string) { chmod(t, path, 0o555) }},
		{"writable", func(t *testing.T, path string) { chmod(t, path, 0o777) }},
		{"setuid", func(t *testing.T, path string) { chmod(t, path, 0o4111) }},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
		}},
		{"longer", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("#!/bin/sh\n")); err != nil {
				t.Fatal(err)
			}
		}},
		{"another build", func(t *testing.T, path string) { rewriteBuildID(t, path) }},
		{"hard-linked", func(t *testing.T, path string) {
			if err := os.Link(path, path+".link"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a symlink", func(t *testing.T, path string) {
			replace(t, path, func(tmp string) error { return os.Symlink("/proc/self/exe", tmp) })
		}},
		{"a fifo", func(t *testing.T, path string) {
			replace(t, path, func(tmp string) error { return unix.Mkfifo(tmp, 0o111) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sealed(t, root).Close()
			path, _ := theCopy(t, root)
			tc.tamper(t, path)
			var bad unix.Stat_t
			if err := unix.Lstat(path, &bad); err != nil {
				t.Fatal(err)
			}
			var why []string
			exe, err := Executable(root, func(f string, a ...any) { why = append(why, fmt.Sprintf(f, a...)) })
			if err != nil {
				t.Fatal(err)
			}
			defer exe.Close()
			assertSealed(t, exe)
			if !strings.Contains(strings.Join(why, "\n"), "rejecting") {
				t.Errorf("the tampered copy was not reported as rejected: %q", why)
			}
			os.Remove(path + ".link")
			_, st := theCopy(t, root)
			if st.Ino == bad.Ino {
				t.Errorf("the tampered copy (inode %d) is still in place", bad.Ino)
			}
			if st.Mode&0o7777 != ExeMode || st.Uid != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("the new copy has mode %#o uid %d", st.Mode, st.Uid)
			}
			if ino := inode(t, exe); ino != st.Ino {
				t.Errorf("exec'd inode %d, want the new copy's %d", ino, st.Ino)
			}
		})
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := unix.Fchmodat(unix.AT_FDCWD, path, uint32(mode), 0); err != nil {
		t.Fatal(err)
	}
}

// replace puts what mk makes at path instead of the copy.
func replace(t *testing.T, path string, mk func(string) error) {
	t.Helper()
	tmp := path + ".new"
	if err := mk(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rewriteBuildID changes one byte of the copy's build ID in place: the
// same size and mode, another build.
func rewriteBuildID(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, buildIDReadSize)
	n, _ := f.ReadAt(buf, 0)
	id := goBuildID(buf[:n])
	i := strings.Index(string(buf[:n]), id)
	if id == "" || i < 0 {
		t.Fatal("no build ID in the copy")
	}
	c := byte('A')
	if buf[i] == c {
		c = 'B'
	}
	if _, err := f.WriteAt([]byte{c}, int64(i)); err != nil {
		t.Fatal(err)
	}
	buf = buf[:n]
	buf[i] = c
	if got := goBuildID(buf); got == id || got == "" {
		t.Fatalf("build ID still %q", got)
	}
}

// Directories that are not root's 0700 ones are not used (nor repaired):
// the binary is copied into a memfd instead, with no error.
func TestUntrustedDirFallsBack(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name string
		dir  string
		mode os.FileMode
		uid  int
	}{
		{"group-readable top", DirName, 0o750, 0},
		{"world-writable bin", filepath.Join(DirName, BinDir), 0o777, 0},
		{"bin not root's", filepath.Join(DirName, BinDir), 0o700, 1000},
		{"empty not root's", filepath.Join(DirName, emptyDir), 0o700, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sealed(t, root).Close()
			dir := filepath.Join(root, tc.dir)
			if err := os.Chown(dir, tc.uid, tc.uid); err != nil {
				t.Fatal(err)
			}
			chmod(t, dir, tc.mode)
			assertMemfd(t, root, "not a directory of root's with mode 0700")
		})
	}
}

// Where the copy cannot be sealed (no overlayfs in the kernel, a state root
// that cannot hold the directory), the binary is copied into a sealed,
// execute-only memfd, as before, and the reason logged at debug level.
func TestFallbackMemfd(t *testing.T) {
	needRoot(t)
	t.Run("no overlayfs", func(t *testing.T) {
		defer func(fs string) { overlayFS = fs }(overlayFS)
		overlayFS = "hostnet-no-such-fs"
		assertMemfd(t, t.TempDir(), "fsopen hostnet-no-such-fs")
	})
	t.Run("state root not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		assertMemfd(t, file, "open state root")
	})
	t.Run("state root that takes no directory", func(t *testing.T) {
		// Nobody, root included, makes a directory in /proc/sys.
		assertMemfd(t, "/proc/sys", "mkdir /proc/sys/@exe")
	})
}

func assertMemfd(t *testing.T, root, reason string) {
	t.Helper()
	var why []string
	exe, err := Executable(root, func(f string, a ...any) { why = append(why, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	if !strings.Contains(strings.Join(why, "\n"), reason) {
		t.Errorf("debug log %q does not say %q", why, reason)
	}
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(exe.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "/memfd:hostnet-runc") {
		t.Fatalf("executable is %s, want the memfd copy", link)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(exe.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != ExeMode {
		t.Errorf("memfd has mode %#o, want %#o", st.Mode&0o7777, ExeMode)
	}
	seals, err := unix.FcntlInt(exe.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if seals&want != want {
		t.Errorf("memfd seals %#x, want %#x", seals, want)
	}
}

// Making a new build's copy removes older builds' copies and temporary
// copies a crashed runtime left a while ago, not one in progress.
func TestStaleCopiesRemoved(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	bin := filepath.Join(root, DirName, BinDir)
	if err := os.MkdirAll(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	old, oldTmp, newTmp := filepath.Join(bin, CopyPrefix+"older-build"), filepath.Join(bin, tmpPrefix+"1.a"), filepath.Join(bin, tmpPrefix+"2.b")
	for _, p := range []string{old, oldTmp, newTmp} {
		if err := os.WriteFile(p, []byte("x"), ExeMode); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(oldTmp, long, long); err != nil {
		t.Fatal(err)
	}
	sealed(t, root)
	for p, want := range map[string]bool{old: false, oldTmp: false, newTmp: true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// goBuildID reads what `go tool buildid` reads.
func TestBuildID(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to compare with")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gobin, "tool", "buildid", self).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := readBuildID(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)); id != want || id == "" {
		t.Errorf("build ID %q, go tool buildid says %q", id, want)
	}
	for _, bad := range [][]byte{nil, []byte("\x7fELF"), []byte("#!/bin/sh\n"), make([]byte, 64)} {
		if id := goBuildID(bad); id != "" {
			t.Errorf("build ID %q from %q", id, bad)
		}
	}
}

// The sealed copy executes: here the test binary, asked to run no test.
func TestSealedExecutes(t *testing.T) {
	needRoot(t)
	exe := sealed(t, t.TempDir())
	cmd := exec.Command("/proc/self/fd/3", "-test.run=^$")
	cmd.ExtraFiles = []*os.File{exe}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("running the sealed copy: %v: %s", err, out)
	}
}

// What one spawn pays for its executable: the sealed copy, reused, against
// the memfd copy (of the test binary, not hostnet-runc: scale by size).
func BenchmarkExecutable(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	root := b.TempDir()
	for _, bc := range []struct {
		name string
		fs   string
	}{{"sealed", overlayFS}, {"memfd", "hostnet-no-such-fs"}} {
		b.Run(bc.name, func(b *testing.B) {
			defer func(fs string) { overlayFS = fs }(overlayFS)
			overlayFS = bc.fs
			for b.Loop() {
				exe, err := Executable(root, nil)
				if err != nil {
					b.Fatal(err)
				}
				exe.Close()
			}
		})
	}
}
