package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// Issue 10 item 6: with `hardened = true`, CAP_NET_ADMIN in another case
// used to pass the shim's check and be granted by the runtime, and the
// container created a veth in the host's netns. Now the shim refuses the
// misspelt names, the canonical one as before, and no veth appears; the
// hardened container still runs, without CAP_NET_RAW.
func TestHardenedCapabilities(t *testing.T) {
	requireHostnet(t)
	cfg := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(cfg, []byte("[network]\nhardened = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	veth := fmt.Sprintf("hnhard%d", os.Getpid()%1000000)
	assertNoVeth := func(t *testing.T) {
		t.Helper()
		for _, name := range []string{veth, veth + "p"} {
			if link, err := netlink.LinkByName(name); err == nil {
				t.Errorf("the container created %s in the host's netns", name)
				_ = netlink.LinkDel(link)
			}
		}
	}
	addVeth := fmt.Sprintf("ip link add %s type veth peer name %sp", veth, veth)
	for _, tc := range []struct {
		name string
		caps []string
		want string
	}{
		{"misspelt", []string{"CAP_net_admin", "CAP_Net_Raw"}, `capability "CAP_net_admin" in process.capabilities.bounding is not a capability name: names are case-sensitive, this one is spelled "CAP_NET_ADMIN"`},
		{"canonical", []string{"CAP_NET_ADMIN"}, "CAP_NET_ADMIN is refused for host network mode containers by the hardened option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := newID(t)
			args := []string{"--rm", "--runtime-config-path", cfg}
			for _, c := range tc.caps {
				args = append(args, "--cap-add", c)
			}
			_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs(args, id, "sh", "-c", addVeth)...)
			assertNoVeth(t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ctr run --cap-add %v: %v, want an error containing %q", tc.caps, err, tc.want)
			}
			removeContainer(t, id)
			assertNoMounts(t, id)
			assertNoRuntimeState(t, id)
		})
	}
	t.Run("runs without CAP_NET_RAW", func(t *testing.T) {
		id := newID(t)
		out, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs([]string{"--rm", "--runtime-config-path", cfg}, id, "grep", "CapBnd", "/proc/self/status")...)
		if err != nil {
			t.Fatal(err)
		}
		var bnd uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(out, "CapBnd:")), "%x", &bnd); err != nil {
			t.Fatalf("parse %q: %v", out, err)
		}
		const netRaw, netAdmin = 13, 12
		if bnd&(1<<netRaw|1<<netAdmin) != 0 || bnd == 0 {
			t.Errorf("hardened container's bounding set %#x has CAP_NET_RAW or CAP_NET_ADMIN", bnd)
		}
	})
}

// Hardened applies to processes exec'd into the container too. `ctr tasks
// exec` and CRI's exec (kubectl exec, open to the pod's author) build the
// process from the container's spec as the client stored it, before the
// shim dropped CAP_NET_RAW from the bundle's copy; the runtime hands an
// exec'd process whatever its spec says.
func TestHardenedExec(t *testing.T) {
	requireHostnet(t)
	cfg := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(cfg, []byte("[network]\nhardened = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := newID(t)
	bg := startCtrRunFlags(t, []string{"--runtime-config-path", cfg}, id, "sleep", "1000")
	out := mustCtr(t, "tasks", "exec", "--exec-id", "caps", id, "grep", "CapBnd", "/proc/self/status")
	var bnd uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(out, "CapBnd:")), "%x", &bnd); err != nil || bnd == 0 {
		t.Fatalf("parse %q: %v", out, err)
	}
	const netRaw = 13
	if bnd&(1<<netRaw) != 0 {
		t.Errorf("exec'd process in a hardened host-mode container has CAP_NET_RAW (bounding set %#x)", bnd)
	}
	mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	bg.wait(t, time.Minute)
}

// Issue 10 item 7: in host mode a net.* sysctl spelt with a leading dot
// passed the shim's check and hostnet-runc wrote it to the host's
// /proc/sys. The shim now reads keys as the runtime does and refuses it
// (InvalidArgument, naming the key); the host's value stays.
func TestHostModeSysctlSpellings(t *testing.T) {
	requireHostnet(t)
	const file = "/proc/sys/net/ipv4/conf/all/arp_announce"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSpace(string(data))
	value := "1"
	if host == "1" {
		value = "2"
	}
	t.Cleanup(func() {
		if now, _ := os.ReadFile(file); strings.TrimSpace(string(now)) != host {
			t.Errorf("the host's arp_announce changed from %s to %s; restoring it", host, strings.TrimSpace(string(now)))
			_ = os.WriteFile(file, []byte(host), 0o644)
		}
	})
	ctx := t.Context()
	img, err := testClient.GetImage(ctx, image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"leading dot": ".net.ipv4.conf.all.arp_announce", "slash form": "net/ipv4/conf/all/arp_announce"} {
		t.Run(name, func(t *testing.T) {
			id := newID(t)
			c, err := testClient.NewContainer(ctx, id,
				client.WithImage(img),
				client.WithNewSnapshot(id, img),
				client.WithRuntime(testRuntime, nil),
				client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("true"),
					func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
						s.Linux.Sysctl = map[string]string{key: value}
						return nil
					}),
			)
			if err != nil {
				t.Fatal(err)
			}
			task, err := c.NewTask(ctx, cio.NewCreator(cio.WithFIFODir(testDaemon.FIFODir)))
			if err == nil {
				_, _ = task.Delete(ctx, client.WithProcessKill)
				t.Fatalf("host-mode container with sysctl %s created", key)
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), key) {
				t.Errorf("create: %v, want InvalidArgument naming %s", err, key)
			}
			if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Error(err)
			}
			assertNoMounts(t, id)
			assertNoRuntimeState(t, id)
		})
	}
}
