package ociruntime

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/seccomp"
)

// enosysEnv makes the test binary a wrapper: it runs its arguments with
// the named system call failing with ENOSYS, as on a kernel without it.
const enosysEnv = "HOSTNET_TEST_ENOSYS"

// execWithoutSyscall is the wrapper's body; it only returns on error.
func execWithoutSyscall(name string, argv []string) error {
	enosys := uint(unix.ENOSYS)
	f, err := seccomp.Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{name}, Action: specs.ActErrno, ErrnoRet: &enosys}},
	})
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if _, err := f.Load(); err != nil {
		return err
	}
	return unix.Exec(argv[0], argv, os.Environ())
}

// runWithout is `run` of the env's bundle, as on a kernel without the named
// system call.
func (e *env) runWithout(syscall string) *exec.Cmd {
	e.t.Helper()
	e.writeSpec()
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(self, runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "run", "--bundle", e.bundle, e.id)
	cmd.Env = append(os.Environ(), enosysEnv+"="+syscall)
	return cmd
}

// The features the runtime advertises list every mount option runc 1.5.2
// knows, the recursive ones included.
func TestFeaturesMountOptions(t *testing.T) {
	out, err := exec.Command(runtimeBin, "features").Output()
	if err != nil {
		t.Fatal(err)
	}
	var f features.Features
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"rro", "rrw", "rnosuid", "rnoexec", "rnodev", "nosymfollow", "rnosymfollow", "lazytime", "iversion", "tmpcopyup"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("features does not list mount option %q (got %v)", o, f.MountOptions)
		}
	}
}

// Where the kernel has no mount_setattr(2), rro cannot be honoured: create
// must fail saying so, and the container must never run with a writable
// mount instead.
func TestRecursiveReadonlyNeedsMountSetattr(t *testing.T) {
	host := t.TempDir()
	e := newEnv(t, "sh", "-c", "echo x > /mnt/top")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: host, Options: []string{"rbind", "rro"}})
	if out, err := e.runWithout("mount_setattr").CombinedOutput(); err == nil {
		t.Fatalf("rro was accepted without mount_setattr(2): %s", out)
	}
	if _, err := os.Stat(filepath.Join(host, "top")); err == nil {
		t.Error("the container wrote to the host directory")
	}
	if msg := e.lastError(); !referenceRunc(t) && (!strings.Contains(msg, "rro") || !strings.Contains(msg, "mount_setattr")) {
		t.Errorf("logged error %q, want it to name rro and mount_setattr", msg)
	}
	e.assertGone()
}

// tmpcopyup fills a tmpfs with what the directory it covers held: files
// with their modes and owners, directories and symlinks. Writes go to the
// tmpfs, never to the image.
func TestTmpcopyup(t *testing.T) {
	rootfs := privateRootfs(t)
	data := filepath.Join(rootfs, "data")
	if err := os.MkdirAll(filepath.Join(data, "dir"), 0o710); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "dir", "file"), []byte("hello\n"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(data, "dir", "file"), 1000, 1001); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dir/file", filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sh", "-c", `cat /data/link; stat -c '%a %u %g' /data/dir/file /data/dir; readlink /data/link; awk '$5 == "/data" && / - tmpfs /' /proc/self/mountinfo | wc -l; echo new > /data/new && echo wrote`)
	e.spec.Root.Path = rootfs
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "nosuid"}})
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	want := "hello\n604 1000 1001\n710 0 0\ndir/file\n1\nwrote\n"
	if out != want {
		t.Errorf("container saw\n%s\nwant\n%s", out, want)
	}
	if _, err := os.Stat(filepath.Join(data, "new")); err == nil {
		t.Error("a write to the tmpfs reached the image")
	}
}

// nosymfollow applies to bind mounts too, where the kernel takes it from a
// remount rather than from the mount's data.
func TestNosymfollowBind(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "file"), []byte("target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(host, "link")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sh", "-c", "cat /mnt/file; cat /mnt/link 2>&1 || echo refused")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: host, Options: []string{"rbind", "nosymfollow"}})
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if !strings.HasPrefix(out, "target\n") || !strings.HasSuffix(out, "refused\n") {
		t.Errorf("container saw %q, want the file read and the symlink refused", out)
	}
}
