package nstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// inOwnNetns marks the copy of a test binary that Main started in a
// network namespace of its own.
const inOwnNetns = "HOSTNET_NSTEST_NETNS"

// Main runs a package's tests. As root it runs them in a new network
// namespace (with its loopback up), so that what they create (bridges,
// veths, nft tables, sysctls such as ip_forward) never reaches the host's
// and concurrent runs cannot collide on names or subnets; the namespace
// goes away with the process. Without root the tests run as they are, and
// those that need it skip (NeedRoot).
func Main(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv(inOwnNetns) != "" {
		if os.Getenv(inOwnNetns) != "" {
			if err := loopbackUp(); err != nil {
				fmt.Fprintln(os.Stderr, "nstest:", err)
				os.Exit(2)
			}
		}
		os.Exit(m.Run())
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nstest: locate the test binary:", err)
		os.Exit(2)
	}
	cmd := exec.Command(self, os.Args[1:]...) //nolint:gosec // the test binary re-executes itself
	cmd.Env = append(os.Environ(), inOwnNetns+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		os.Exit(exit.ExitCode())
	default:
		fmt.Fprintln(os.Stderr, "nstest: run the tests in a new network namespace:", err)
		os.Exit(2)
	}
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// NeedRoot skips a test that changes network namespaces, links or nft
// tables when it does not run as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run as root, where it runs in a network namespace of its own")
	}
}
