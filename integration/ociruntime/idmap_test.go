package ociruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// idmapSource is a host directory for idmapped bind mounts, in a 0700
// directory the container's mapped root cannot enter: root-file (0:0),
// user-file (1000:1000), and a tmpfs mounted on sub with sub/root-file
// (0:0).
func idmapSource(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vol")
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m,mode=1777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	for _, f := range []struct {
		path string
		id   int
	}{{"root-file", 0}, {"user-file", 1000}, {"sub/root-file", 0}} {
		p := filepath.Join(dir, f.path)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, f.id, f.id); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// owner is uid:gid of path on the host.
func owner(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// Issue 13 item 1: idmapped bind mounts (the idmap and ridmap options, a
// mount's own uidMappings and gidMappings), which the kubelet asks for on
// a user-namespaced pod's volumes: the host's ids show through the
// mapping, and what the container writes lands on the host with the
// unmapped ids. The sources are in a directory the container's mapped
// root cannot enter, like a pod's volumes: the runtime opens them on the
// host. hostnet-runc refused all of these before; each passes with
// HOSTNET_RUNC=runc 1.5.2 too.
func TestIDMappedBindMounts(t *testing.T) {
	const script = "stat -c %u:%g /mnt/root-file /mnt/user-file /mnt/sub/root-file | tr '\\n' ' '; " +
		"touch /mnt/new && echo top; touch /mnt/sub/new && echo sub; true"
	mapping := func(host uint32) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: 1}}
	}
	for _, tc := range []struct {
		name     string
		userns   bool
		user     uint32 // the process's uid and gid
		options  []string
		uid, gid []specs.LinuxIDMapping
		// want is what the container prints; newTop and newSub own the
		// files it created on the host ("" if it could not).
		want           string
		newTop, newSub string
	}{
		// The top mount takes the container's mappings; the tmpfs below
		// it does not, and shows the host's root as the overflow id.
		{name: "idmap", userns: true, options: []string{"rbind", "idmap"},
			want: "0:0 1000:1000 65534:65534 top sub", newTop: "0:0", newSub: "100000:100000"},
		{name: "ridmap", userns: true, options: []string{"rbind", "ridmap"},
			want: "0:0 1000:1000 0:0 top sub", newTop: "0:0", newSub: "0:0"},
		// The mount's own mappings, not the container's: the host's root
		// is the container's uid 1000, who writes as the host's root.
		{name: "mount mappings", userns: true, user: 1000, options: []string{"rbind"}, uid: mapping(101000), gid: mapping(101000),
			want: "1000:1000 65534:65534 65534:65534 top sub", newTop: "0:0", newSub: "101000:101000"},
		// A container without a user namespace: the mapping alone.
		{name: "mount mappings without user namespace", options: []string{"rbind"}, uid: mapping(1000), gid: mapping(1000),
			want: "1000:1000 65534:65534 0:0 sub", newSub: "0:0"},
		// No idmap: the mapped root sees the host's ids unmapped, and
		// still gets a source it cannot reach itself.
		{name: "unreachable source without idmap", userns: true, options: []string{"rbind"},
			want: "65534:65534 65534:65534 65534:65534 sub", newSub: "100000:100000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.options, "ridmap") && !kernelAtLeast(t, 6, 3) {
				// The source's submount is a tmpfs, which the kernel idmaps
				// from 6.3 (EINVAL before, for runc too).
				t.Skip("tmpfs takes idmapped mounts from Linux 6.3")
			}
			vol := idmapSource(t)
			e := newEnv(t, "sh", "-c", script)
			if tc.userns {
				withUserNamespace(t, e)
			}
			e.spec.Process.User = specs.User{UID: tc.user, GID: tc.user}
			e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: vol,
				Options: tc.options, UIDMappings: tc.uid, GIDMappings: tc.gid})
			out, err := e.runOutput()
			if err != nil {
				var stderr []byte
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					stderr = ee.Stderr
				}
				t.Fatalf("%v: %s %s", err, e.lastError(), stderr)
			}
			if got := strings.Join(strings.Fields(out), " "); got != tc.want {
				t.Errorf("in the container: %q, want %q", got, tc.want)
			}
			for _, f := range []struct{ path, want string }{{"new", tc.newTop}, {"sub/new", tc.newSub}} {
				p := filepath.Join(vol, f.path)
				if f.want == "" {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("%s was created, as %s", f.path, owner(t, p))
					}
					continue
				}
				if got := owner(t, p); got != f.want {
					t.Errorf("the container's %s is owned by %s on the host, want %s", f.path, got, f.want)
				}
			}
			e.assertGone()
		})
	}
}

// An idmap option without mappings of the mount's own takes the
// container's user namespace's: without one, the spec is refused, as runc
// refuses it, before anything is made.
func TestIDMapNeedsMappings(t *testing.T) {
	e := newEnv(t, "true")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: t.TempDir(), Options: []string{"rbind", "idmap"}})
	if _, err := e.create(); err == nil {
		t.Fatal("an idmap mount without mappings in a container without a user namespace was accepted")
	}
	e.assertGone()
}

// features reports idmapped mounts truthfully: not on a kernel without
// mount_setattr(2), where none can be made (and a spec asking for one is
// refused). runc 1.5.2 reports them unconditionally.
func TestFeaturesIDMapNeedsMountSetattr(t *testing.T) {
	if referenceRunc(t) {
		t.Skip("runc 1.5.2 reports idmap enabled whatever the kernel")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		without string
		want    bool
	}{{"", true}, {"mount_setattr", false}} {
		cmd := exec.Command(runtimeBin, "features")
		if tc.without != "" {
			cmd = exec.Command(self, runtimeBin, "features")
			cmd.Env = append(os.Environ(), enosysEnv+"="+tc.without)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		var f features.Features
		if err := json.Unmarshal(out, &f); err != nil {
			t.Fatal(err)
		}
		m := f.Linux.MountExtensions
		if m == nil || m.IDMap == nil || m.IDMap.Enabled == nil || *m.IDMap.Enabled != tc.want {
			t.Errorf("features without %q: mountExtensions %+v, want idmap enabled %v", tc.without, m, tc.want)
		}
	}
}

// On a kernel without mount_setattr(2) (before Linux 5.12) an idmapped
// mount cannot be made: create refuses the spec up front, saying which
// kernel it needs, and the container never runs with the source unmapped.
func TestIDMapNeedsMountSetattr(t *testing.T) {
	vol := idmapSource(t)
	e := newEnv(t, "sh", "-c", "touch /mnt/new")
	withUserNamespace(t, e)
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: vol, Options: []string{"rbind", "idmap"}})
	if out, err := e.runWithout("mount_setattr").CombinedOutput(); err == nil {
		t.Fatalf("an idmapped mount was accepted without mount_setattr(2): %s", out)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); err == nil {
		t.Error("the container ran and wrote to the volume")
	}
	if msg := e.lastError(); !referenceRunc(t) && (!strings.Contains(msg, "mount_setattr") || !strings.Contains(msg, "5.12")) {
		t.Errorf("logged error %q, want it to name mount_setattr and Linux 5.12", msg)
	}
	e.assertGone()
}

// kernelAtLeast reports whether the running kernel is major.minor or later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", u.Release[:], err)
	}
	return maj > major || maj == major && min >= minor
}
