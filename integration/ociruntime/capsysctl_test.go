package ociruntime

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// logged returns the msg of every line of the JSON log at level.
func (e *env) logged(level string) []string {
	e.t.Helper()
	f, err := os.Open(e.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Level == level {
			msgs = append(msgs, line.Msg)
		}
	}
	return msgs
}

// capLines returns the CapBnd, CapPrm and CapEff values of a
// /proc/self/status dump.
func capLines(status string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && slices.Contains([]string{"CapBnd", "CapPrm", "CapEff"}, k) {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// Issue 10 item 6: capability names are read exactly, as runc 1.5.2 reads
// them. CAP_net_admin and CAP_Net_Raw are not CAP_NET_ADMIN and
// CAP_NET_RAW: the container runs without them, and, like runc, the names
// are skipped with runc's warning. hostnet-runc upper-cased them and
// granted both. Passes with HOSTNET_RUNC=runc 1.5.2 too.
func TestCapabilityNamesAreExact(t *testing.T) {
	e := newEnv(t, "sh", "-c", "grep Cap /proc/self/status")
	caps := []string{"CAP_KILL", "CAP_net_admin", "CAP_Net_Raw", "CAP_BOGUS"}
	c := e.spec.Process.Capabilities
	c.Bounding, c.Effective, c.Permitted = caps, caps, caps
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	const killOnly = "0000000000000020" // 1 << CAP_KILL
	for set, v := range capLines(out) {
		if v != killOnly {
			t.Errorf("%s = %s, want %s (CAP_KILL only)", set, v, killOnly)
		}
	}
	if len(capLines(out)) != 3 {
		t.Fatalf("no capability lines in %q", out)
	}
	const warning = "ignoring unknown or unavailable capabilities: [CAP_BOGUS CAP_Net_Raw CAP_net_admin]"
	if !slices.Contains(e.logged("warning"), warning) {
		t.Errorf("log warnings %q, want %q", e.logged("warning"), warning)
	}
	e.assertGone()
}

// The same for `exec --cap`, which adds to the exec'd process's sets.
func TestExecCapabilityNamesAreExact(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	out, err := e.rt("exec", "--cap", "CAP_net_admin", "--cap", "CAP_SYS_ADMIN", e.id, "grep", "CapEff", "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	// CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE of the spec, and
	// CAP_SYS_ADMIN; not CAP_NET_ADMIN.
	const want = "0000000020200420"
	if got := capEff(out); got != want {
		t.Errorf("exec --cap CAP_net_admin --cap CAP_SYS_ADMIN: CapEff %s, want %s", got, want)
	}
	e.mustRT("delete", "--force", e.id)
	e.assertGone()
}

// hostSysctl reads a sysctl of the host (the test's netns) and restores it
// when the test ends if something changed it.
func hostSysctl(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(data))
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/proc/sys/" + path); strings.TrimSpace(string(now)) != v {
			t.Errorf("the host's %s changed from %s to %s; restoring it", path, v, strings.TrimSpace(string(now)))
			_ = os.WriteFile("/proc/sys/"+path, []byte(v), 0o644)
		}
	})
	return v
}

func other(v string) string {
	if v == "0" {
		return "1"
	}
	return "0"
}

// Issue 10 item 7: sysctls are only written in namespaces the container has
// of its own, with runc's rules, after the key is canonicalised: a
// non-namespaced key (kernel.core_uses_pid), a net.* key without a private
// netns or in the host's netns joined by path, and a key that does not name
// a file by plain descent are refused, and the host's values stay. The
// slash form of a namespaced key is written where it should be. Passes
// with HOSTNET_RUNC=runc 1.5.2 too.
func TestSysctlsOnlyInContainerNamespaces(t *testing.T) {
	corePID := hostSysctl(t, "kernel/core_uses_pid")
	announce := hostSysctl(t, "net/ipv4/conf/all/arp_announce")
	hostNetNS := "/proc/" + strconv.Itoa(os.Getpid()) + "/ns/net"
	withNet := func(path string) func(*specs.Spec) {
		return func(s *specs.Spec) {
			withoutNamespace(s, specs.NetworkNamespace)
			if path != "" {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path})
			}
		}
	}
	for _, tc := range []struct {
		name, key, value string
		edit             func(*specs.Spec)
	}{
		{"not namespaced", "kernel.core_uses_pid", other(corePID), nil},
		{"not namespaced in the slash form", "kernel/core_uses_pid", other(corePID), nil},
		{"net in the host netns", "net.ipv4.conf.all.arp_announce", other(announce), withNet("")},
		{"net in the host netns by path", "net.ipv4.conf.all.arp_announce", other(announce), withNet(hostNetNS)},
		{"leading dot", ".net.ipv4.conf.all.arp_announce", other(announce), withNet("")},
		{"dot-dot", "net/../kernel/core_uses_pid", other(corePID), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "true")
			e.spec.Linux.Sysctl = map[string]string{tc.key: tc.value}
			if tc.edit != nil {
				tc.edit(e.spec)
			}
			if _, err := e.create(); err == nil {
				t.Fatalf("create with sysctl %s=%s succeeded", tc.key, tc.value)
			}
			if msg := e.lastError(); !strings.Contains(msg, "sysctl") {
				t.Errorf("logged error %q does not say which sysctl", msg)
			}
			e.assertGone()
		})
	}
	t.Run("namespaced in the slash form", func(t *testing.T) {
		e := newEnv(t, "cat", "/proc/sys/net/ipv4/conf/all/arp_announce", "/proc/sys/kernel/shm_rmid_forced")
		e.spec.Linux.Sysctl = map[string]string{"net/ipv4/conf/all/arp_announce": other(announce), "kernel/shm_rmid_forced": "1"}
		out, err := e.runOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, e.lastError())
		}
		if got := strings.Fields(out); len(got) != 2 || got[0] != other(announce) || got[1] != "1" {
			t.Errorf("arp_announce and shm_rmid_forced in the container: %q, want %s and 1", out, other(announce))
		}
		e.assertGone()
	})
}

// A container needs no /proc of its own: the capabilities are set without
// reading /proc/self/status after pivot_root (moby/sys/capability's Load
// does, so hostnet-runc failed "read capabilities: open
// /proc/self/status: no such file or directory"; runc 1.5.2 fails the same
// way, on "open /proc/sys/kernel/cap_last_cap", so this test is
// hostnet-runc's only). The host sees exactly the spec's sets.
func TestNoProcMount(t *testing.T) {
	if referenceRunc(t) {
		t.Skip("runc 1.5.2 reads /proc/self/status after pivot_root and fails without a /proc mount")
	}
	e := newEnv(t, "sleep", "1000")
	e.spec.Mounts = slices.DeleteFunc(e.spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/proc" })
	caps := []string{"CAP_KILL"}
	c := e.spec.Process.Capabilities
	c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient = caps, caps, caps, nil, nil
	if _, err := e.create(); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	e.mustRT("start", e.id)
	pid := strconv.Itoa(e.state().Pid)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	const killOnly = "0000000000000020" // 1 << CAP_KILL
	lines := capLines(string(status))
	for _, set := range []string{"CapBnd", "CapPrm", "CapEff"} {
		if lines[set] != killOnly {
			t.Errorf("%s = %s, want %s (CAP_KILL only)", set, lines[set], killOnly)
		}
	}
	if out, err := e.rt("exec", e.id, "sh", "-c", "ls -A /proc | wc -l"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("exec in the container: %q, %v; want an empty /proc", out, err)
	}
	e.mustRT("delete", "--force", e.id)
	e.assertGone()
}
