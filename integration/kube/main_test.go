// Package kube is the Kubernetes test lane (`make test-kube`): a real
// single-node Kubernetes — etcd, kube-apiserver and a kubelet of
// Kubernetes 1.37, built by contrib/build-kubernetes.sh — runs pods with
// RuntimeClass hostnet on a private containerd, and the tests drive it
// with client-go as a user of the cluster would: hostNetwork pods and pods
// on the CNI pod network, logs, exec, exec -it, port-forward, probes,
// limits, restarts, the manifests of contrib/kubernetes, and the network
// mode annotations.
//
// Everything runs in containerd's own network namespace
// (daemon.Config.NetNS) and talks over its loopback, or to the node's
// address on a veth link there (the kubelet refuses a loopback node IP):
// the node is "localhost", no scheduler or kube-proxy runs (pods name
// their node), and the kubelet runs in a mount namespace of its own in
// which the host sysctls it would set are copies, so it changes nothing on
// this machine; the lane checks that.
//
// Adding a scenario is a test function: build a pod with newPod (or
// decode a manifest), c.run it, and check it with c.mustExec, c.logs,
// c.portForward and c.modeOf. User-namespaced pods (hostUsers: false) and
// recursiveReadOnly volume mounts are on by default in Kubernetes 1.37
// (userns_test.go), under RuntimeClass hostnet: the handler has no options
// table, as containerd 2.x needs for the former.
//
// Environment:
//
//	HOSTNET_BIN_DIR   directory with the shim and hostnet-runc (<repo>/bin)
//	HOSTNET_KUBE_KEEP keep the cluster's directory (logs) after the run
package kube

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

var (
	cl         *cluster
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "the Kubernetes lane needs root (sudo make test-kube)"
		return m.Run()
	}
	for _, bin := range []string{filepath.Join(kubeBinDir, "kubelet"), filepath.Join(kubeBinDir, "kube-apiserver"), filepath.Join(etcdBinDir, "etcd")} {
		if _, err := os.Stat(bin); err != nil {
			return fail(fmt.Errorf("%w: run contrib/build-kubernetes.sh (make test-kube does)", err))
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
	hostPathsBefore := existing(kubeletHostPaths)
	cniBefore, err := hoststate.TakeFiles(cniCacheDir)
	if err != nil {
		return fail(err)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := startCluster(ctx, binDir)
	if err != nil {
		if c != nil && c.d != nil {
			fmt.Printf("kube lane: containerd log:\n%s\n", c.d.LogTail(40))
		}
		return fail(err)
	}
	cl = c
	fmt.Printf("kube lane: cluster up in %s (dir %s, netns %s)\n", time.Since(start).Round(time.Millisecond), c.dir, c.d.NetNSPath())
	code := m.Run()
	if code != 0 {
		for _, name := range []string{"kubelet", "kube-apiserver"} {
			fmt.Printf("kube lane: last lines of the %s log:\n%s\n", name, c.tail(name, 60))
		}
		fmt.Printf("kube lane: last lines of containerd's log:\n%s\n", c.d.LogTail(60))
	}
	if err := c.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "kube lane: teardown:", err)
		code = 1
	}
	if err := cniBefore.RemoveNew(podCNICache(c.cniNet)); err != nil {
		fmt.Fprintln(os.Stderr, "kube lane:", err)
		code = 1
	}
	// What a kubelet or CRI writes on a node by default must not be here.
	for _, p := range kubeletHostPaths {
		if _, err := os.Lstat(p); err == nil && !hostPathsBefore[p] {
			fmt.Fprintf(os.Stderr, "kube lane: %s was created on the host; removing it\n", p)
			os.RemoveAll(p)
			code = 1
		}
	}
	if err := hoststate.Check(realHost); err != nil {
		fmt.Fprintln(os.Stderr, "kube lane:", err)
		code = 1
	}
	fmt.Printf("kube lane: %s in all\n", time.Since(start).Round(time.Millisecond))
	return code
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "kube lane:", err)
	return 1
}

// need returns the cluster or skips the test saying why there is none.
func need(t *testing.T) *cluster {
	t.Helper()
	if cl == nil {
		t.Skip(skipReason)
	}
	return cl
}

// The libcni results cache (/var/lib/cni) is the only CNI state outside
// the cluster's directory (host-local's is in it).
const cniCacheDir = "/var/lib/cni/results"

// podCNICache says whether a results-cache entry is the lane's: the pod
// network's, or CRI's loopback's for the pods.
func podCNICache(netName string) func(string) bool {
	return func(p string) bool {
		name := filepath.Base(p)
		return strings.HasPrefix(name, netName+"-") || strings.HasPrefix(name, "cni-loopback-")
	}
}

// kubeletHostPaths are where a kubelet and CRI write on a node unless told
// otherwise; the lane keeps them in its own directory.
var kubeletHostPaths = []string{"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/usr/libexec/kubernetes", "/etc/kubernetes", "/run/kubernetes"}

func existing(paths []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			m[p] = true
		}
	}
	return m
}
