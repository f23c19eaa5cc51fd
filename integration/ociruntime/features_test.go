package ociruntime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Issue 10 item 13: callers decide what to trust from `features`, so each
// thing it advertises is checked against what the runtime does, and each
// thing it says is not implemented is refused in a spec rather than
// ignored.
func TestFeaturesAreTrue(t *testing.T) {
	e := newEnv(t, "true")
	var f features.Features
	if err := json.Unmarshal([]byte(e.mustRT("features")), &f); err != nil {
		t.Fatal(err)
	}
	if f.Linux == nil {
		t.Fatal("features without a linux section")
	}
	t.Run("hooks", func(t *testing.T) { testFeatureHooks(t, f.Hooks) })
	t.Run("capabilities", func(t *testing.T) { testFeatureCapabilities(t, f.Linux.Capabilities) })
	t.Run("namespaces", func(t *testing.T) { testFeatureNamespaces(t, f.Linux.Namespaces) })
	t.Run("seccomp", func(t *testing.T) { testFeatureSeccomp(t, f.Linux.Seccomp) })
	t.Run("mountOptions", func(t *testing.T) { testFeatureMountOptions(t, f.MountOptions) })
	t.Run("lsm", func(t *testing.T) { testFeatureLSM(t, f.Linux) })
	t.Run("idmap", func(t *testing.T) { testFeatureIDMap(t, f.Linux.MountExtensions) })
	t.Run("not implemented", func(t *testing.T) { testFeatureRefusals(t, f.Linux) })
}

// Every listed hook type runs, at its point of the lifecycle.
func testFeatureHooks(t *testing.T, names []string) {
	if len(names) == 0 {
		t.Fatal("no hooks listed, but the spec's hooks run")
	}
	markers := t.TempDir()
	e := newEnv(t, "true")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/tmp", Type: "bind", Source: markers, Options: []string{"rbind"}})
	e.spec.Hooks = &specs.Hooks{}
	lists := map[string]*[]specs.Hook{
		"prestart": &e.spec.Hooks.Prestart, "createRuntime": &e.spec.Hooks.CreateRuntime, //nolint:staticcheck // runc still runs prestart hooks
		"createContainer": &e.spec.Hooks.CreateContainer, "startContainer": &e.spec.Hooks.StartContainer,
		"poststart": &e.spec.Hooks.Poststart, "poststop": &e.spec.Hooks.Poststop,
	}
	for _, name := range names {
		list, ok := lists[name]
		if !ok {
			t.Errorf("features lists hook %q, which the runtime-spec does not define", name)
			continue
		}
		// startContainer runs in the container, after pivot_root: its
		// path and the marker resolve there.
		marker := filepath.Join(markers, name)
		if name == "startContainer" {
			marker = "/tmp/" + name
		}
		*list = append(*list, specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo > " + marker}})
	}
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	e.waitStatus(specs.StateStopped)
	e.mustRT("delete", e.id)
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(markers, name)); err != nil {
			t.Errorf("listed hook %s did not run: %v", name, err)
		}
	}
	e.assertGone()
}

// Every listed capability the kernel has, and the test may hand out, is
// granted.
func testFeatureCapabilities(t *testing.T, names []string) {
	own, err := capability.NewPid2(0)
	if err == nil {
		err = own.Load()
	}
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	var granted []string
	for _, name := range names {
		c, ok := capByName(name)
		if !ok {
			t.Errorf("listed capability %q is not a capability name", name)
			continue
		}
		if own.Get(capability.BOUNDING, c) {
			want |= 1 << uint(c)
			granted = append(granted, name)
		}
	}
	e := newEnv(t, "grep", "CapEff", "/proc/self/status")
	e.spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: granted, Effective: granted, Permitted: granted}
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if got, wantHex := capEff(out), fmt.Sprintf("%016x", want); got != wantHex {
		t.Errorf("CapEff with every listed capability = %s, want %s", got, wantHex)
	}
}

func capByName(name string) (capability.Cap, bool) {
	for _, c := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(c.String()) == name {
			return c, true
		}
	}
	return 0, false
}

// A container with every listed namespace gets a new one of each.
func testFeatureNamespaces(t *testing.T, names []string) {
	e := newEnv(t, "sh", "-c", "for n in /proc/self/ns/*; do echo $(basename $n) $(readlink $n); done")
	e.spec.Linux.Namespaces = nil
	userns := false
	for _, n := range names {
		if n == string(specs.UserNamespace) {
			userns = true
			continue // withUserNamespace adds it with its mappings
		}
		e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.LinuxNamespaceType(n)})
	}
	if userns {
		withUserNamespace(t, e)
	}
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	inside := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			inside[k] = v
		}
	}
	file := map[string]string{"cgroup": "cgroup", "ipc": "ipc", "mount": "mnt", "network": "net", "pid": "pid", "time": "time", "user": "user", "uts": "uts"}
	for _, n := range names {
		f, ok := file[n]
		if !ok {
			t.Errorf("features lists namespace %q, which the runtime-spec does not define", n)
			continue
		}
		host, _ := os.Readlink("/proc/self/ns/" + f)
		// A new time namespace applies to the children of its creator:
		// the container's processes show it as time_for_children's.
		if got := inside[f]; got == "" || got == host {
			t.Errorf("listed namespace %s: the container's is %q, the host's %q", n, got, host)
		}
	}
	e.assertGone()
}

// The runtime accepts a profile using every listed action, operator and
// architecture and every supported flag (the seccomp package's tests
// check each one's effect).
func testFeatureSeccomp(t *testing.T, sc *features.Seccomp) {
	if sc == nil || sc.Enabled == nil || !*sc.Enabled {
		t.Fatal("seccomp is not reported enabled, but profiles are applied")
	}
	for _, fl := range sc.SupportedFlags {
		if !slices.Contains(sc.KnownFlags, fl) {
			t.Errorf("supported flag %s is not a known flag", fl)
		}
	}
	// Rules on syscalls busybox's true never makes.
	unused := []string{"acct", "swapon", "swapoff", "reboot", "kexec_load", "init_module", "delete_module", "pivot_root", "syslog", "quotactl"}
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for _, a := range sc.Archs {
		p.Architectures = append(p.Architectures, specs.Arch(a))
	}
	for _, fl := range sc.SupportedFlags {
		p.Flags = append(p.Flags, specs.LinuxSeccompFlag(fl))
	}
	i := 0
	for _, a := range sc.Actions {
		if a == string(specs.ActAllow) {
			continue
		}
		for _, op := range sc.Operators {
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
				Names: []string{unused[i%len(unused)]}, Action: specs.LinuxSeccompAction(a),
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: 7, ValueTwo: 7, Op: specs.LinuxSeccompOperator(op)}},
			})
			i++
		}
	}
	// SCMP_ACT_NOTIFY rules need an agent to send the listener to.
	p.ListenerPath = startSeccompAgent(t).path
	e := newEnv(t, "true")
	e.spec.Linux.Seccomp = p
	if _, err := e.runOutput(); err != nil {
		t.Fatalf("a profile of listed features: %v: %s", err, e.lastError())
	}
	e.assertGone()
}

// Every listed mount option is accepted, and those with a visible effect
// on the mount have it.
func testFeatureMountOptions(t *testing.T, opts []string) {
	if len(opts) == 0 {
		t.Fatal("no mount options listed")
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "bound"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "cat", "/proc/self/mountinfo")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	for _, o := range opts {
		m := specs.Mount{Destination: "/tmp/" + o, Type: "tmpfs", Source: "tmpfs", Options: []string{o}}
		switch o {
		case "bind", "rbind":
			m = specs.Mount{Destination: "/tmp/" + o, Type: "none", Source: src, Options: []string{o}}
		case "remount":
			// Remounts the mount already there, read-only.
			e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/tmp/" + o, Type: "tmpfs", Source: "tmpfs"})
			m.Options = []string{o, "ro"}
		}
		e.spec.Mounts = append(e.spec.Mounts, m)
	}
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("mounts with every listed option: %v: %s", err, e.lastError())
	}
	// mountinfo: id parent major:minor root mountpoint options optional... - type source super
	lines := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 6 {
			lines[f[4]] = f
		}
	}
	has := func(o, flag string) bool {
		f := lines["/tmp/"+o]
		return slices.Contains(strings.Split(f[5], ","), flag)
	}
	optional := func(o, prefix string) bool {
		f := lines["/tmp/"+o]
		for _, x := range f[6:] {
			if x == "-" {
				break
			}
			if strings.HasPrefix(x, prefix) {
				return true
			}
		}
		return false
	}
	effects := map[string]func(o string) bool{
		"ro":          func(o string) bool { return has(o, "ro") },
		"remount":     func(o string) bool { return has(o, "ro") },
		"rw":          func(o string) bool { return has(o, "rw") },
		"nosuid":      func(o string) bool { return has(o, "nosuid") },
		"suid":        func(o string) bool { return !has(o, "nosuid") },
		"nodev":       func(o string) bool { return has(o, "nodev") },
		"dev":         func(o string) bool { return !has(o, "nodev") },
		"noexec":      func(o string) bool { return has(o, "noexec") },
		"exec":        func(o string) bool { return !has(o, "noexec") },
		"noatime":     func(o string) bool { return has(o, "noatime") },
		"relatime":    func(o string) bool { return has(o, "relatime") },
		"strictatime": func(o string) bool { return !has(o, "relatime") && !has(o, "noatime") },
		"nodiratime":  func(o string) bool { return has(o, "nodiratime") },
		"nosymfollow": func(o string) bool { return has(o, "nosymfollow") },
		"rro":         func(o string) bool { return has(o, "ro") },
		"rnosuid":     func(o string) bool { return has(o, "nosuid") },
		"rnodev":      func(o string) bool { return has(o, "nodev") },
		"rnoexec":     func(o string) bool { return has(o, "noexec") },
		"rnoatime":    func(o string) bool { return has(o, "noatime") },
		"shared":      func(o string) bool { return optional(o, "shared:") },
		"rshared":     func(o string) bool { return optional(o, "shared:") },
		"unbindable":  func(o string) bool { return optional(o, "unbindable") },
		"runbindable": func(o string) bool { return optional(o, "unbindable") },
		"bind": func(o string) bool {
			return lines["/tmp/"+o][3] == src || strings.HasSuffix(lines["/tmp/"+o][3], filepath.Base(src))
		},
		"rbind": func(o string) bool { return strings.HasSuffix(lines["/tmp/"+o][3], filepath.Base(src)) },
	}
	for _, o := range opts {
		if lines["/tmp/"+o] == nil {
			t.Errorf("listed mount option %s: no mount at /tmp/%s", o, o)
			continue
		}
		if check, ok := effects[o]; ok && !check(o) {
			t.Errorf("listed mount option %s has no effect: %s", o, strings.Join(lines["/tmp/"+o], " "))
		}
	}
	e.assertGone()
}

// AppArmor and SELinux are reported compiled in: a profile or label in the
// spec, or given to exec, is applied, or refused on a host without the LSM;
// never ignored.
func testFeatureLSM(t *testing.T, l *features.Linux) {
	if l.Apparmor == nil || l.Apparmor.Enabled == nil || l.Selinux == nil || l.Selinux.Enabled == nil {
		t.Fatal("apparmor/selinux support not reported")
	}
	apparmor := fileStartsWith("/sys/module/apparmor/parameters/enabled", "Y")
	_, err := os.Stat("/sys/fs/selinux/enforce")
	selinux := err == nil
	if !*l.Apparmor.Enabled || !*l.Selinux.Enabled {
		t.Errorf("apparmor %v, selinux %v: both are applied by the init", *l.Apparmor.Enabled, *l.Selinux.Enabled)
	}

	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	if apparmor {
		out, err := e.rt("exec", "--apparmor", "unconfined", e.id, "cat", "/proc/self/attr/current")
		if err != nil || !strings.Contains(out, "unconfined") {
			t.Errorf("exec --apparmor unconfined: %q, %v", out, err)
		}
	} else if _, err := e.rt("exec", "--apparmor", "hostnet-test", e.id, "true"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "apparmor") {
		t.Errorf("exec --apparmor on a host without AppArmor: %v, want an error naming AppArmor", err)
	}
	if !selinux {
		if _, err := e.rt("exec", "--process-label", "system_u:system_r:container_t:s0", e.id, "true"); err == nil {
			t.Error("exec --process-label on a host without SELinux succeeded: the label was ignored")
		}
	}
	e.mustRT("delete", "--force", e.id)
	e.assertGone()

	if !apparmor {
		e := newEnv(t, "true")
		e.spec.Process.ApparmorProfile = "hostnet-test"
		if _, err := e.create(); err == nil {
			t.Error("process.apparmorProfile on a host without AppArmor was ignored")
		}
		e.assertGone()
	}
}

func fileStartsWith(path, prefix string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.HasPrefix(string(data), prefix)
}

// What features says is not implemented is refused in a spec.
func testFeatureRefusals(t *testing.T, l *features.Linux) {
	off := func(b *bool) bool { return b != nil && !*b }
	cases := map[string]func(*specs.Spec){}
	if l.IntelRdt != nil && off(l.IntelRdt.Enabled) {
		cases["intelRdt"] = func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "hostnet-test"} }
	}
	if l.NetDevices != nil && off(l.NetDevices.Enabled) {
		cases["netDevices"] = func(s *specs.Spec) { s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"hostnet-none0": {}} }
	}
	if l.MountExtensions != nil && l.MountExtensions.IDMap != nil && off(l.MountExtensions.IDMap.Enabled) {
		cases["idmap"] = func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "bind", Source: os.TempDir(), Options: []string{"rbind"},
				UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}}, GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}}})
		}
	}
	if l.MemoryPolicy != nil && len(l.MemoryPolicy.Modes) == 0 {
		cases["memoryPolicy"] = func(s *specs.Spec) { s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"} }
	}
	if len(cases) == 0 {
		t.Skip("features reports nothing as unimplemented")
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "true")
			edit(e.spec)
			if _, err := e.create(); err == nil {
				t.Errorf("features says %s is not implemented, but a spec using it was accepted", name)
			}
			e.assertGone()
		})
	}
}

// Idmapped mounts, when enabled, map: a file the host's root owns shows
// as the container's root's through an idmap bind mount in a user
// namespace whose root is the host's uid 100000, and what that root writes
// is the host root's. (When disabled, testFeatureRefusals checks that
// they are refused.)
func testFeatureIDMap(t *testing.T, m *features.MountExtensions) {
	if m == nil || m.IDMap == nil || m.IDMap.Enabled == nil || !*m.IDMap.Enabled {
		t.Skip("features says idmapped mounts are not implemented")
	}
	vol := idmapSource(t)
	e := newEnv(t, "sh", "-c", "stat -c %u /mnt/root-file; touch /mnt/new")
	withUserNamespace(t, e)
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: vol, Options: []string{"rbind", "idmap"}})
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if strings.TrimSpace(out) != "0" {
		t.Errorf("the host root's file is owned by %q in the container, want 0", strings.TrimSpace(out))
	}
	if got := owner(t, filepath.Join(vol, "new")); got != "0:0" {
		t.Errorf("the container root's file is owned by %s on the host, want 0:0", got)
	}
	e.assertGone()
}
