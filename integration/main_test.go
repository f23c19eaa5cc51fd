// Package integration runs hostnet against a real, private containerd.
//
// One containerd serves the whole package run (see TestMain). Tests drive it
// the way users do, with ctr, and through the containerd Go client. They
// need root, Debian's busybox-static, containerd and ctr on PATH, and the
// binaries `make build` puts in bin/.
//
// Environment:
//
//	HOSTNET_BIN_DIR       directory with the shim and hostnet-runc (default: <repo>/bin)
//	HOSTNET_TEST_RUNTIME  runtime under test (default: io.containerd.hostnet.v1);
//	                      io.containerd.runc.v2 checks the suite itself against
//	                      the stock shim, with ctr's --net-host
//	HOSTNET_RUNTIME_ROOT  state root the hostnet shim gives hostnet-runc
//	                      (default: /run/containerd/hostnet-runc)
package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
)

var (
	// testDaemon is the package's containerd; testClient is connected to it
	// in testDaemon.Namespace.
	testDaemon *daemon.Daemon
	testClient *client.Client

	// binDir holds the binaries under test.
	binDir string
	// testRuntime is the runtime name every test container runs with.
	testRuntime string
	// runtimeRoot is where the shim's OCI runtime keeps container state.
	runtimeRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("integration: skipping, the tests need root (sudo make test)")
		return 0
	}
	var err error
	if binDir, err = daemon.BinDir(); err != nil {
		return fail(err)
	}
	testRuntime = envOr("HOSTNET_TEST_RUNTIME", daemon.HostnetRuntime)
	runtimeRoot = daemon.DefaultRuntimeRoot(testRuntime)
	for _, bin := range []string{"containerd-shim-hostnet-v1", "hostnet-runc"} {
		if _, err := os.Stat(filepath.Join(binDir, bin)); err != nil && testRuntime == daemon.HostnetRuntime {
			return fail(fmt.Errorf("%w: run `make build` first", err))
		}
	}
	fmt.Printf("integration: runtime %s, binaries from %s, runtime root %s\n", testRuntime, binDir, runtimeRoot)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{
		BinDir:       binDir,
		Namespace:    fmt.Sprintf("hostnet-it-%d", os.Getpid()),
		RuntimeRoots: []string{runtimeRoot},
	})
	if err != nil {
		return fail(err)
	}
	undo := d.StopOnInterrupt()
	code := func() int {
		if err := d.ImportBusybox(ctx); err != nil {
			return fail(err)
		}
		c, err := d.Client()
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		testDaemon, testClient = d, c
		return m.Run()
	}()
	if code != 0 {
		fmt.Printf("integration: last lines of %s:\n%s\n", d.LogPath, d.LogTail(40))
	}
	undo()
	if err := d.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: teardown:", err)
		code = 1
	}
	return code
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "integration:", err)
	return 1
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
