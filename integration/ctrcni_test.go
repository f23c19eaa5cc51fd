package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/hoststate"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/spec"
)

// ctrCNIScript puts a conflist where `ctr run --cni` looks (/etc/cni/net.d,
// plugins in /opt/cni/bin) in a private mount namespace.
const ctrCNIScript = `mount -t tmpfs -o size=1m,mode=755 hostnet-ctr-cni /opt && mkdir -p /opt/cni/bin &&
mount --bind /usr/lib/cni /opt/cni/bin && mount --bind "$1" /etc/cni/net.d && shift && exec "$@"`

// runc152 is the reference runtime, built by contrib/setup.sh.
const runc152 = "/var/cache/hostnet/runc-v1.5.2/bin/runc"

// TestCtrCNI: `ctr run --cni` runs CNI itself, once the task is created, in
// /proc/<pid>/ns/net. In host mode that is the host's netns: CNI's eth0 and
// address would be put on the host (and its DEL would remove the host's
// eth0). hostnet reads ctr's mark on the container record and honours
// ctr's network (mode none), as it does nerdctl's: the container gets its
// own netns with CNI's eth0, and the host is left exactly as a runc run
// leaves it. Asking for host mode by annotation with --cni is refused.
//
// containerd and ctr run in a network namespace of the test's own, "the
// host" here, so that even a hostnet without this check cannot touch the
// machine's network.
func TestCtrCNI(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("tests hostnet's reading of ctr --cni")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	pid := os.Getpid()
	d, err := daemon.Start(ctx, daemon.Config{BinDir: binDir, Namespace: fmt.Sprintf("hostnet-ctrcni-%d", pid),
		RuntimeRoots: []string{runtimeRoot, daemon.DefaultRuntimeRoot(daemon.RuncRuntime)}, NetNS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log:\n%s", d.LogTail(40))
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	if err := d.ImportBusybox(ctx); err != nil {
		t.Fatal(err)
	}
	netName := fmt.Sprintf("hostnet-ctrcni-%d", pid)
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.234.%d.0/24", pid%200))
	confDir := t.TempDir()
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": netName,
		"plugins": []any{map[string]any{"type": "bridge", "bridge": "hnctrcni0", "isGateway": true, "ipMasq": false,
			"ipam": map[string]any{"type": "host-local", "dataDir": t.TempDir(), "ranges": [][]map[string]string{{{"subnet": subnet.String()}}}}}},
	})
	if err := os.WriteFile(filepath.Join(confDir, "10-ctrcni.conflist"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCNICache(t, netName) })
	ctr := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := d.InNetNS(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", ctrCNIScript, "sh", confDir,
			ctrPath(), "--address", d.Address, "--namespace", d.Namespace}, args...)...)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("ctr %s: %w: %s%s", strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String(), err
	}
	show := []string{"sh", "-c", "readlink /proc/self/ns/net; ip -o -4 addr show dev eth0"}
	var st syscall.Stat_t
	if err := syscall.Stat(d.NetNSPath(), &st); err != nil {
		t.Fatal(err)
	}
	hostNS := fmt.Sprintf("net:[%d]", st.Ino)

	// runc first: what CNI's bridge leaves on the host (its bridge, the
	// gateway address, ip_forward) is CNI's, whatever the runtime.
	ref := []string{"--runtime", daemon.RuncRuntime}
	if _, err := os.Stat(runc152); err == nil {
		ref = append(ref, "--runc-binary", runc152)
	}
	if out, err := ctr(append(append([]string{"run", "--rm", "--cni"}, ref...), append([]string{image.DefaultName, "ctrcni-runc"}, show...)...)...); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("runc: %s", out)
	}
	before, err := hoststate.Take(d.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hoststate.Restore(before); err != nil {
			t.Errorf("restore the test's host netns: %v", err)
		}
	})

	out, err := ctr(append([]string{"run", "--rm", "--cni", "--runtime", daemon.HostnetRuntime, image.DefaultName, "ctrcni-hostnet"}, show...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(strings.TrimSpace(out), "\n", 2)
	if lines[0] == hostNS {
		t.Errorf("the container ran in the host's netns %s", hostNS)
	}
	if len(lines) < 2 || !strings.Contains(lines[1], " inet "+subnet.Addr().String()[:strings.LastIndex(subnet.Addr().String(), ".")+1]) {
		t.Errorf("no eth0 from ctr's CNI network %s in the container:\n%s", subnet, out)
	}
	logText, _ := os.ReadFile(d.LogPath)
	if m := regexp.MustCompile(`msg="network mode" id=ctrcni-hostnet mode=(\w+)`).FindSubmatch(logText); m == nil || string(m[1]) != "none" {
		t.Errorf("mode logged for ctrcni-hostnet: %q, want none", m)
	}
	assertSameHost(t, before)

	// The annotation asks for the host's netns, where ctr's CNI would go.
	_, err = ctr("run", "--rm", "--cni", "--runtime", daemon.HostnetRuntime, "--annotation", spec.NetworkAnnotation+"=host", image.DefaultName, "ctrcni-host", "true")
	if err == nil || !strings.Contains(err.Error(), spec.NetworkAnnotation+"=host conflicts with ctr run --cni") {
		t.Errorf("ctr run --cni with %s=host: %v, want it refused", spec.NetworkAnnotation, err)
	}
	assertSameHost(t, before)

	// Without --cni, host mode as ever.
	out, err = ctr("run", "--rm", "--runtime", daemon.HostnetRuntime, image.DefaultName, "ctrcni-plain", "readlink", "/proc/self/ns/net")
	if err != nil || strings.TrimSpace(out) != hostNS {
		t.Errorf("ctr run without --cni: %q, %v; want the host's netns %s", out, err, hostNS)
	}
	assertSameHost(t, before)
}

// assertSameHost fails if the namespace of before changed since.
func assertSameHost(t *testing.T, before *hoststate.State) {
	t.Helper()
	diff, err := hoststate.Changed(before)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 {
		t.Errorf("the host's network namespace changed:\n%s", strings.Join(diff, "\n"))
	}
}

// ctrPath is the ctr the daemons use.
func ctrPath() string {
	if p, err := exec.LookPath("ctr"); err == nil {
		return p
	}
	return "/usr/local/bin/ctr"
}
