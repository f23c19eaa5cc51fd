package initproc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/internal/systest"
)

// The tests here run the init's setup with a recording double of its
// system calls (systest) and check what it decides and in which order:
// no root needed. The container's root is a directory of the test's, where
// mount targets are resolved and made for real. The kernel side is covered
// by the integration tests (integration/ociruntime).

var _ Syscalls = (*systest.Recorder)(nil)

// newContainer returns a bootstrap for a container as `runc spec` makes it,
// with a user, capabilities, limits, a sysctl and a seccomp profile, and a
// recorder for its root, which holds /bin/sh, /work and the /proc files
// the masked and read-only paths name.
func newContainer(t *testing.T) (*Bootstrap, *systest.Recorder) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "work", "dev", "proc/acpi", "proc/sys"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/sh"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/kcore"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The masks need a null device: the host's, the one a test without
	// root can have (mknod is recorded, not made).
	if err := os.Symlink("/dev/null", filepath.Join(root, "dev/null")); err != nil {
		t.Fatal(err)
	}
	rec, err := systest.New(root)
	if err != nil {
		t.Fatal(err)
	}
	caps := []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "box",
		Process: &specs.Process{
			Args: []string{"sh", "-c", "true"},
			Env:  []string{"PATH=/usr/bin:/bin", "HOME=/root"},
			Cwd:  "/work",
			User: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{10}},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps, Ambient: caps[1:],
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			Sysctl:        map[string]string{"kernel.shm_rmid_forced": "1"},
			MaskedPaths:   []string{"/proc/acpi", "/proc/kcore"},
			ReadonlyPaths: []string{"/proc/sys"},
			Seccomp: &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}},
			},
		},
	}
	b := &Bootstrap{
		Spec: s, Rootfs: rec.Root,
		Fds:   Fds{ExecFifo: -1, ConsoleSocket: -1},
		State: &specs.State{ID: "c1"},
	}
	return b, rec
}

// processCalls are the calls that set up the process of newContainer,
// the container's or an exec's, in order.
var processCalls = []string{
	"cloexec 3..",
	"prlimit 7 1024 4096",
	"chdir /work",
	"bounding CAP_CHOWN,CAP_NET_BIND_SERVICE",
	"keepcaps on",
	"setgroups [10]",
	"setresgid 1001",
	"setresuid 1000",
	"keepcaps off",
	"capset effective=CAP_CHOWN,CAP_NET_BIND_SERVICE permitted=CAP_CHOWN,CAP_NET_BIND_SERVICE inheritable=none",
	"ambient reset",
	"ambient raise CAP_NET_BIND_SERVICE",
	"no_new_privs",
	"umask 0022",
	"getwd",
	"seccomp load",
}

// index returns where the first call starting with prefix is, failing the
// test when there is none.
func index(t *testing.T, calls []string, prefix string) int {
	t.Helper()
	for i, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return i
		}
	}
	t.Fatalf("no call %q in %q", prefix, calls)
	return -1
}

// The whole of a container's setup, in order. Why this order:
//   - lo is up, the keyring joined and the cgroup namespace unshared
//     before the mounts (the namespace's root is the container's cgroup);
//   - the mounts follow the rootfs bind in spec order, the devices last;
//   - pivot_root, then the sysctls (before /proc/sys is made read-only),
//     the read-only and masked paths, the hostname;
//   - descriptors close-on-exec and limits while still root, chdir into the
//     cwd, then capabilities around the id switch: bounding first (needs
//     CAP_SETPCAP), keep-caps across setresuid, then the other sets;
//   - no_new_privs, the umask, the check that the cwd is inside the root,
//     and the seccomp profile last, as close to execve as can be.
func TestSetupOrder(t *testing.T) {
	b, rec := newContainer(t)
	p, err := setup(rec, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.path != "/bin/sh" || !slices.Equal(p.args, b.Spec.Process.Args) {
		t.Errorf("program %q %q, want /bin/sh %q", p.path, p.args, b.Spec.Process.Args)
	}
	want := []string{
		"umask 0000",
		"lo up",
		"keyctl join c1",
		"unshare CLONE_NEWCGROUP",
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount proc on /proc type proc (0)",
		"mount tmpfs on /dev type tmpfs (MS_NOSUID|MS_STRICTATIME) mode=0755,mode=755",
		"mknod /dev/null c 1:3 0666", "chown /dev/null 0:0",
		"mknod /dev/zero c 1:5 0666", "chown /dev/zero 0:0",
		"mknod /dev/full c 1:7 0666", "chown /dev/full 0:0",
		"mknod /dev/random c 1:8 0666", "chown /dev/random 0:0",
		"mknod /dev/urandom c 1:9 0666", "chown /dev/urandom 0:0",
		"mknod /dev/tty c 5:0 0666", "chown /dev/tty 0:0",
		"fchdir /",
		"pivot_root . .",
		"fchdir host:/",
		"mount none on . (MS_REC|MS_SLAVE)",
		"umount2 . MNT_DETACH",
		"chdir /",
		`write /proc/sys/kernel/shm_rmid_forced "1"`,
		"open_tree /proc/sys recursive",
		"mount_setattr tree:/proc/sys set=RDONLY",
		"move_mount tree:/proc/sys on /proc/sys",
		"fsopen tmpfs",
		"fsconfig create fs:tmpfs",
		"fsmount tmpfs RDONLY|NOSUID|NODEV|NOEXEC",
		"move_mount tmpfs on /proc/acpi",
		"open_tree host:/dev/null",
		"move_mount tree:host:/dev/null on /proc/kcore",
		"sethostname box",
	}
	systest.CheckCalls(t, rec.Calls(), append(want, processCalls...))
}

// With no_new_privs, the profile is loaded last, after the capabilities
// are dropped. Without it, loading needs CAP_SYS_ADMIN, which the switch
// to the user's capabilities may drop: it is loaded before.
func TestSetupSeccompAndNoNewPrivs(t *testing.T) {
	b, rec := newContainer(t)
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	if nnp, load := index(t, calls, "no_new_privs"), index(t, calls, "seccomp load"); load != len(calls)-1 || nnp > load {
		t.Errorf("with no_new_privs: no_new_privs at %d, seccomp load at %d of %d calls; want the load last, after no_new_privs", nnp, load, len(calls))
	}

	b, rec = newContainer(t)
	b.Spec.Process.NoNewPrivileges = false
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	calls = rec.Calls()
	if load, bounding := index(t, calls, "seccomp load"), index(t, calls, "bounding"); load > bounding {
		t.Errorf("without no_new_privs: seccomp load at %d, after the bounding set is dropped at %d", load, bounding)
	}
	if slices.Contains(calls, "no_new_privs") {
		t.Error("no_new_privs set though the spec does not ask for it")
	}
	// And close-on-exec comes before any profile, which may refuse it.
	if cloexec, load := index(t, calls, "cloexec"), index(t, calls, "seccomp load"); cloexec > load {
		t.Errorf("close-on-exec at %d, after the seccomp profile at %d", cloexec, load)
	}
}

// The capability sets change around the id switch exactly so.
func TestSetUserOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		proc specs.Process
		want []string
	}{
		{"root keeping a few", specs.Process{Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_KILL", "CAP_CHOWN"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"},
			Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL", "CAP_CHOWN", "CAP_NO_SUCH"},
		}}, []string{
			"bounding CAP_KILL,CAP_CHOWN", "keepcaps on", "setgroups []", "setresgid 0", "setresuid 0", "keepcaps off",
			"capset effective=CAP_KILL permitted=CAP_KILL inheritable=CAP_KILL",
			// Every known ambient capability is asked for; the kernel
			// refuses those not permitted and inheritable.
			"ambient reset", "ambient raise CAP_KILL", "ambient raise CAP_CHOWN",
		}},
		{"no capabilities at all", specs.Process{User: specs.User{UID: 5, GID: 6, AdditionalGids: []uint32{7, 8}}}, []string{
			"bounding none", "keepcaps on", "setgroups [7 8]", "setresgid 6", "setresuid 5", "keepcaps off",
			"capset effective=none permitted=none inheritable=none", "ambient reset",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec := newContainer(t)
			if err := setUser(rec, &tc.proc); err != nil {
				t.Fatal(err)
			}
			systest.CheckCalls(t, rec.Calls(), tc.want)
		})
	}
}

// A user namespace whose setgroups is "deny" refuses setgroups(2): that is
// fine with no groups to set, an error with some.
func TestSetUserSetgroupsRefused(t *testing.T) {
	_, rec := newContainer(t)
	rec.Fail = map[string]error{"setgroups": unix.EPERM}
	if err := setUser(rec, &specs.Process{User: specs.User{UID: 1}}); err != nil {
		t.Errorf("no groups asked for: %v", err)
	}
	_, rec = newContainer(t)
	rec.Fail = map[string]error{"setgroups": unix.EPERM}
	err := setUser(rec, &specs.Process{User: specs.User{UID: 1, AdditionalGids: []uint32{4}}})
	if err == nil || !strings.Contains(err.Error(), "setgroups [4]") {
		t.Errorf("groups asked for: err = %v", err)
	}
	if slices.Contains(rec.Calls(), "setresuid 1") {
		t.Error("the uid changed after setgroups failed")
	}
}

// The hostname is set only in a UTS namespace of the container's, else
// create fails: setting it would rename the host.
func TestSetupHostnameNeedsUTSNamespace(t *testing.T) {
	for _, name := range []struct{ host, domain string }{{"box", ""}, {"", "example.org"}} {
		b, rec := newContainer(t)
		b.Spec.Hostname, b.Spec.Domainname = name.host, name.domain
		b.Spec.Linux.Namespaces = slices.DeleteFunc(b.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.UTSNamespace })
		_, err := setup(rec, b, nil)
		if err == nil || !strings.Contains(err.Error(), "without a private UTS namespace") {
			t.Errorf("%+v without a UTS namespace: err = %v", name, err)
		}
		if calls := rec.Matching("sethostname", "setdomainname"); len(calls) > 0 {
			t.Errorf("%+v without a UTS namespace: %q", name, calls)
		}
	}
	b, rec := newContainer(t)
	b.Spec.Domainname = "example.org"
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("sethostname", "setdomainname"), []string{"sethostname box", "setdomainname example.org"})
	// Without a hostname nothing is set, UTS namespace or not.
	b, rec = newContainer(t)
	b.Spec.Hostname = ""
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("sethostname", "setdomainname"), nil)
}

// pivot_root with a mount namespace of the container's, MS_MOVE and chroot
// with --no-pivot, and only chroot in the host's mount namespace, whose
// propagation and root stay untouched.
func TestSetupRootSwitch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noPivot   bool
		hostMntNS bool
		want      []string
	}{
		{"pivot_root", false, false, []string{
			"mount none on host:/ (MS_REC|MS_SLAVE)", "mount / on / (MS_BIND|MS_REC)",
			"fchdir /", "pivot_root . .", "fchdir host:/", "mount none on . (MS_REC|MS_SLAVE)", "umount2 . MNT_DETACH", "chdir /", "chdir /work",
		}},
		{"no pivot", true, false, []string{
			"mount none on host:/ (MS_REC|MS_SLAVE)", "mount / on / (MS_BIND|MS_REC)",
			"chdir /", "mount / on host:/ (MS_MOVE)", "chroot .", "chdir /", "chdir /work",
		}},
		{"host mount namespace", false, true, []string{
			"mount / on / (MS_BIND|MS_REC)",
			"chdir /", "chroot .", "chdir /", "chdir /work",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, rec := newContainer(t)
			b.Spec.Mounts = nil
			b.Spec.Linux.MaskedPaths, b.Spec.Linux.ReadonlyPaths = nil, nil
			b.NoPivot = tc.noPivot
			if tc.hostMntNS {
				b.Spec.Linux.Namespaces = slices.DeleteFunc(b.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.MountNamespace })
			}
			if _, err := setup(rec, b, nil); err != nil {
				t.Fatal(err)
			}
			calls := rec.Matching("mount", "umount2", "pivot_root", "chroot", "chdir /", "fchdir")
			systest.CheckCalls(t, calls, tc.want)
		})
	}
}

// The sysctls are written before the read-only paths are applied:
// /proc/sys is among them.
func TestSetupSysctlsBeforeReadonlyPaths(t *testing.T) {
	b, rec := newContainer(t)
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	if w, ro := index(t, calls, "write /proc/sys/"), index(t, calls, "open_tree /proc/sys"); w > ro {
		t.Errorf("sysctl written at %d, after /proc/sys was made read-only at %d", w, ro)
	}
	if w, pivot := index(t, calls, "write /proc/sys/"), index(t, calls, "pivot_root"); w < pivot {
		t.Errorf("sysctl written at %d, before pivot_root at %d", w, pivot)
	}
}

// Namespaces joined by path are not set up again: their lo is as it is,
// and the cgroup namespace is not unshared. A time namespace gets its
// offsets before anything else is in it.
func TestSetupNamespaces(t *testing.T) {
	b, rec := newContainer(t)
	for i, ns := range b.Spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace || ns.Type == specs.CgroupNamespace {
			b.Spec.Linux.Namespaces[i].Path = "/proc/1/ns/" + string(ns.Type)
		}
	}
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	b.Spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 7}}
	b.NoNewKeyring = true
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	systest.CheckCalls(t, calls[:4], []string{
		"umask 0000",
		"unshare CLONE_NEWTIME",
		`write /proc/self/timens_offsets "monotonic 7 0\n"`,
		"mount none on host:/ (MS_REC|MS_SLAVE)",
	})
	if got := rec.Matching("lo up", "unshare CLONE_NEWCGROUP", "keyctl"); len(got) > 0 {
		t.Errorf("joined namespaces set up again, or --no-new-keyring ignored: %q", got)
	}
}

// The working directory: one that cannot be entered fails create with
// runc's words, and one outside the container's root after the switch (a
// host directory reached through a leaked descriptor, CVE-2024-21626) is
// refused. That check comes last, once nothing can change the cwd.
func TestSetupCwd(t *testing.T) {
	b, rec := newContainer(t)
	b.Spec.Process.Cwd = "/missing"
	rec.Fail = map[string]error{"chdir /missing": unix.ENOENT}
	_, err := setup(rec, b, nil)
	if err == nil || !strings.Contains(err.Error(), `chdir to cwd ("/missing") set in config.json failed`) {
		t.Errorf("cwd that cannot be entered: err = %v", err)
	}
	if calls := rec.Matching("setresuid", "seccomp"); len(calls) > 0 {
		t.Errorf("went on after the chdir failed: %q", calls)
	}

	b, rec = newContainer(t)
	rec.Wd = "(unreachable)/var/lib/hostnet"
	_, err = setup(rec, b, nil)
	if err == nil || !strings.Contains(err.Error(), "outside of the container's root") {
		t.Errorf("cwd outside the root: err = %v", err)
	}
	calls := rec.Calls()
	if getwd := index(t, calls, "getwd"); getwd < index(t, calls, "setresuid") || getwd < index(t, calls, "chdir /work") {
		t.Errorf("the cwd is checked at %d, before the chdir or the uid switch: %q", getwd, calls)
	}
	if slices.Contains(calls, "seccomp load") {
		t.Error("the profile was loaded for a process that will not run")
	}
}

// The program is looked up in the container's root, with its PATH, after
// the chdir (a relative name is relative to the cwd).
func TestLookPath(t *testing.T) {
	_, rec := newContainer(t)
	for path, mode := range map[string]os.FileMode{"usr/bin/tool": 0o755, "usr/bin/data": 0o644, "work/run": 0o755, "bin/tool": 0o755} {
		full := filepath.Join(rec.Root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Chroot("."); err != nil {
		t.Fatal(err)
	}
	if err := rec.Chdir("/work"); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin"}
	for _, tc := range []struct{ name, want, err string }{
		{"tool", "/usr/bin/tool", ""},
		{"sh", "/bin/sh", ""},
		{"./run", "./run", ""},
		{"/bin/tool", "/bin/tool", ""},
		{"data", "", `exec: "data": executable file not found in $PATH`},
		{"/usr/bin/data", "", `exec: "/usr/bin/data": permission denied`},
		{"/usr/bin", "", `exec: "/usr/bin": is a directory`},
		{"missing", "", `exec: "missing": executable file not found in $PATH`},
		{"/missing", "", `exec: "/missing": stat /missing: no such file or directory`},
	} {
		got, err := lookPath(rec, []string{tc.name}, env)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("lookPath(%q) = %q, %v; want error %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// A process joining a running container touches no mount, root or
// hostname: only its own attributes.
func TestSetupExec(t *testing.T) {
	b, rec := newContainer(t)
	b.Exec = true
	if err := rec.Chroot("."); err != nil { // it is in the container's root already
		t.Fatal(err)
	}
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), append([]string{"chroot .", "umask 0000"}, processCalls...))
}

// Preserved descriptors (--preserve-fds) stay open: close-on-exec starts
// after them.
func TestSetupPreservedFds(t *testing.T) {
	b, rec := newContainer(t)
	b.Fds.Preserved = 2
	if _, err := setup(rec, b, nil); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("cloexec"), []string{"cloexec 5.."})
}

// The prestart and createRuntime hooks, which the parent runs, come once
// every mount is in place and before pivot_root.
func TestSetupRuntimeHooksBetweenMountsAndPivot(t *testing.T) {
	b, rec := newContainer(t)
	b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true"}}}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	initEnd, parentEnd := os.NewFile(uintptr(fds[0]), "init"), os.NewFile(uintptr(fds[1]), "parent")
	defer parentEnd.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		dec, enc := json.NewDecoder(parentEnd), json.NewEncoder(parentEnd)
		for {
			var r Reply
			if err := dec.Decode(&r); err != nil {
				return
			}
			if r.Hooks {
				rec.Log("parent runs the runtime hooks")
				if err := enc.Encode(HookResult{}); err != nil {
					return
				}
			}
		}
	}()
	ch := &channel{sync: initEnd, enc: json.NewEncoder(initEnd), dec: json.NewDecoder(initEnd)}
	_, err = setup(rec, b, ch)
	initEnd.Close()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	hooks := index(t, calls, "parent runs the runtime hooks")
	if last := index(t, calls, "chown /dev/tty"); hooks < last {
		t.Errorf("hooks at %d, before the last device was made at %d", hooks, last)
	}
	if pivot := index(t, calls, "pivot_root"); hooks > pivot {
		t.Errorf("hooks at %d, after pivot_root at %d", hooks, pivot)
	}
}
