// Package ociruntime tests hostnet-runc as containerd's shims drive it: the
// runc command line against real bundles, namespaces and cgroups, with the
// regressions of runc's security history.
package ociruntime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// runtimeBin is the hostnet-runc under test: $HOSTNET_RUNC, else a fresh
// static build (the binary re-executes itself inside containers, where no
// dynamic loader exists).
var runtimeBin string

// rootfsDir is a busybox root shared read-only by every test bundle.
var rootfsDir string

func TestMain(m *testing.M) {
	if name := os.Getenv(enosysEnv); name != "" {
		fmt.Fprintln(os.Stderr, execWithoutSyscall(name, os.Args[1:]))
		os.Exit(126)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("skipping hostnet-runc tests: they need root")
		return 0
	}
	tmp, err := os.MkdirTemp("", "hostnet-ociruntime-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	runtimeBin = os.Getenv("HOSTNET_RUNC")
	if runtimeBin == "" {
		runtimeBin = filepath.Join(tmp, "hostnet-runc")
		_, file, _, _ := runtime.Caller(0)
		repo := filepath.Join(filepath.Dir(file), "..", "..")
		build := exec.Command("go", "build", "-o", runtimeBin, "./runtime/cmd/hostnet-runc")
		build.Dir = repo
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build hostnet-runc: %v\n%s", err, out)
			return 1
		}
	}
	rootfsDir = filepath.Join(tmp, "rootfs")
	if err := makeRootfs(rootfsDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// makeRootfs lays out a minimal busybox root.
func makeRootfs(dir string) error {
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp", "root", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	bb := filepath.Join(dir, "bin", "busybox")
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("busybox-static is needed: %w", err)
	}
	if err := os.WriteFile(bb, data, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
}
