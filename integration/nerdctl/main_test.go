// Package nerdctl is the nerdctl test lane (`make test-nerdctl`): nerdctl
// 2.2 driving hostnet through a private containerd, as a nerdctl user
// would, with nerdctl's own networks (CNI from its OCI hook), -p,
// --network host and none, hostnet's bridge mode by annotation, and
// compose.
//
// containerd runs in a network namespace of its own (daemon.Config.NetNS)
// and every nerdctl command runs in it too: "the host's" network for a
// host-mode container is that namespace, so what a client's CNI would do
// to the host is seen there, and the machine's own is compared before and
// after the lane to show nothing reached it. nerdctl keeps its state in
// the test's --data-root and --cni-netconfpath; CNI's own state under
// /var/lib/cni that names the lane's containerd namespace is removed.
//
// Environment:
//
//	HOSTNET_BIN_DIR   directory with the shim and hostnet-runc (<repo>/bin)
//	HOSTNET_NERDCTL   the nerdctl binary (/var/cache/hostnet/nerdctl-v2.2.1/bin/nerdctl,
//	                  built by contrib/build-nerdctl.sh); the lane skips,
//	                  saying so, when it is missing
package nerdctl

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/hoststate"
)

// defaultNerdctl is where contrib/build-nerdctl.sh caches nerdctl.
const defaultNerdctl = "/var/cache/hostnet/nerdctl-v2.2.1/bin/nerdctl"

// cniBinDir holds Debian's containernetworking-plugins.
const cniBinDir = "/usr/lib/cni"

var (
	env *lane
	// skipReason is why the lane does not run, when it does not.
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "the nerdctl lane needs root (sudo make test-nerdctl)"
		return m.Run()
	}
	nerdctl := os.Getenv("HOSTNET_NERDCTL")
	if nerdctl == "" {
		nerdctl = defaultNerdctl
	}
	if _, err := os.Stat(nerdctl); err != nil {
		skipReason = fmt.Sprintf("nerdctl is not built (%v): contrib/build-nerdctl.sh builds it, given nerdctl's mod/tigron archive (../shared/nerdctl/)", err)
		return m.Run()
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall", "tuning"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			return fail(fmt.Errorf("CNI plugin %s missing (apt-get install containernetworking-plugins): %w", p, err))
		}
	}
	binDir, err := daemon.BinDir()
	if err != nil {
		return fail(err)
	}
	realHost, err := hoststate.Take("")
	if err != nil {
		return fail(err)
	}
	cniBefore, err := hoststate.TakeFiles(cniStateDirs...)
	if err != nil {
		return fail(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("hostnet-nerdctl-%d", os.Getpid())
	d, err := daemon.Start(ctx, daemon.Config{
		BinDir:       binDir,
		Namespace:    ns,
		RuntimeRoots: []string{daemon.DefaultRuntimeRoot(daemon.HostnetRuntime), daemon.DefaultRuntimeRoot(daemon.RuncRuntime)},
		NetNS:        true,
	})
	if err != nil {
		return fail(err)
	}
	undo := d.StopOnInterrupt()
	code := func() int {
		if err := d.ImportBusybox(ctx); err != nil {
			return fail(err)
		}
		env = &lane{d: d, nerdctl: nerdctl, dataRoot: filepath.Join(d.Dir, "nerdctl"), netconf: filepath.Join(d.Dir, "cni-net.d")}
		for _, dir := range []string{env.dataRoot, env.netconf} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fail(err)
			}
		}
		out, err := env.run(ctx, "version")
		fmt.Printf("nerdctl lane: %s, containerd in netns %s\n%s\n", nerdctl, d.NetNSPath(), strings.TrimSpace(out))
		if err != nil {
			return fail(err)
		}
		return m.Run()
	}()
	if code != 0 {
		fmt.Printf("nerdctl lane: last lines of %s:\n%s\n", d.LogPath, d.LogTail(60))
	}
	undo()
	if err := d.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "nerdctl lane: teardown:", err)
		code = 1
	}
	if err := cniBefore.RemoveNew(laneCNIState(ns)); err != nil {
		fmt.Fprintln(os.Stderr, "nerdctl lane: CNI state:", err)
		code = 1
	}
	// Everything ran in containerd's own netns: the machine's is as it was.
	if err := hoststate.Check(realHost); err != nil {
		fmt.Fprintln(os.Stderr, "nerdctl lane:", err)
		code = 1
	}
	return code
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "nerdctl lane:", err)
	return 1
}

// cniStateDirs are where libcni and host-local keep state by default (the
// results cache and the leases of networks without a dataDir: nerdctl's),
// and hostnet's default bridge IPAM (nerdctl passes hostnet no options).
var cniStateDirs = []string{"/var/lib/cni/results", "/var/lib/cni/networks", "/var/lib/hostnet"}

// laneCNIState says whether a file that appeared under cniStateDirs is the
// lane's: it names or holds a container id of containerd namespace ns
// (nerdctl gives CNI "<namespace>-<id>"), or is host-local's or hostnet's
// own bookkeeping.
func laneCNIState(ns string) func(string) bool {
	return func(p string) bool {
		data, _ := os.ReadFile(p)
		base := filepath.Base(p)
		return strings.Contains(base, ns+"-") || strings.HasPrefix(string(data), ns+"-") ||
			base == "lock" || strings.HasPrefix(base, "last_reserved_ip") || strings.HasPrefix(p, "/var/lib/hostnet/")
	}
}
