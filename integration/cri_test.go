package integration

// The Kubernetes path: a private containerd with its CRI plugin configured
// for the runtime handler "hostnet", driven over CRI's gRPC API the way the
// kubelet drives it (k8s.io/cri-api), with a pause image built here and a
// CNI network of Debian's plugins private to the test.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/integration/internal/systemdbox"
	"github.com/hostnet-dev/hostnet/spec"
)

// criPauseImage is the sandbox image's reference. The .invalid domain can
// never be pulled from: the test imports it before any pod runs.
const criPauseImage = "hostnet.invalid/pause:test"

// criCNIBinDir holds Debian's containernetworking-plugins.
const criCNIBinDir = "/usr/lib/cni"

// criEnv is the CRI-enabled containerd of TestCRI and the test's network.
type criEnv struct {
	d   *daemon.Daemon
	rt  runtimeapi.RuntimeServiceClient
	img runtimeapi.ImageServiceClient
	// ctr is a containerd client in the CRI namespace, to read the specs
	// CRI generated.
	ctr *client.Client

	netName string       // CNI network name
	bridge  string       // CNI bridge, created by the bridge plugin
	subnet  netip.Prefix // CNI subnet
	// hostnetSubnet is hostnet's own bridge-mode subnet for this test.
	hostnetSubnet netip.Prefix
	hostnetBridge string
	// hardened: the node's hostnet configuration sets network.hardened.
	hardened     bool
	gateway      netip.Addr // the bridge's address
	ipamDir      string     // host-local's dataDir
	cgroupParent string     // below /<d.Namespace>, removed by d.Stop
	hostNetNS    string     // readlink /proc/self/ns/net of the test
	// box, when set, is the systemd sandbox containerd runs in, with
	// hostnet's systemd cgroup driver; base is the directory bound into it
	// that holds every file containerd and the CNI plugins use.
	box  *systemdbox.Box
	base string
}

// TestCRI runs pods through containerd's CRI plugin with the hostnet
// runtime handler: a hostNetwork pod, a pod on a CNI network, and pods
// whose hostnet annotation reaches the shim through pod_annotations.
func TestCRI(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("the CRI runtime handler under test is hostnet's")
	}
	e := startCRIEnv(t, false)
	t.Run("HostNetworkPod", e.testHostNetworkPod)
	t.Run("PodNetwork", e.testPodNetwork)
	t.Run("Annotations", func(t *testing.T) {
		t.Run("NoneKeepsPodNetwork", e.testAnnotationNone)
		t.Run("HostOverridesPodNetwork", e.testAnnotationHost)
		t.Run("HostRefusesPodNetSysctls", e.testAnnotationHostSysctls)
		t.Run("InvalidRejected", e.testAnnotationInvalid)
		t.Run("BridgeRejectedForPodNetwork", e.testAnnotationBridge)
		t.Run("BridgeRejectedForHostNetworkPod", e.testBridgeHostNetworkPod)
	})
}

// startCRIEnv starts a CRI-enabled containerd; with systemd, inside a
// sandbox whose init is systemd, and hostnet configured with
// [runtime] systemd_cgroup = true as for a kubelet with the systemd cgroup
// driver.
func startCRIEnv(t *testing.T, systemd bool) *criEnv {
	t.Helper()
	return startCRIEnvOf(t, systemd, "", "")
}

// startCRIEnvOf is startCRIEnv with another containerd and ctr (PATH's if
// empty), e.g. an older release (compat_test.go).
func startCRIEnvOf(t *testing.T, systemd bool, containerd, ctr string) *criEnv {
	t.Helper()
	return startCRIEnvWith(t, criEnvOptions{systemd: systemd, containerd: containerd, ctr: ctr})
}

// criEnvOptions are startCRIEnvWith's: systemd, containerd and ctr as for
// startCRIEnvOf, and runc, when set, the runc that containerd's runc shim
// runs for the handler daemon.CRIRuncHandler, to compare with.
type criEnvOptions struct {
	systemd         bool
	containerd, ctr string
	runc            string
	// runcOptionsHandler registers daemon.CRIRuncOptionsHandler.
	runcOptionsHandler bool
	// hardened sets network.hardened in the node's hostnet configuration
	// (criEnv.hardened); configPathHandler registers
	// daemon.CRIConfigPathHandler, whose document does not.
	hardened, configPathHandler bool
}

// startCRIEnvWith is startCRIEnv with options.
func startCRIEnvWith(t *testing.T, o criEnvOptions) *criEnv {
	t.Helper()
	systemd, containerd, ctr := o.systemd, o.containerd, o.ctr
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(criCNIBinDir, p)); err != nil {
			t.Fatalf("CNI plugin %s missing (apt-get install containernetworking-plugins): %v", p, err)
		}
	}
	pid := os.Getpid()
	hostNetNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	e := &criEnv{
		netName:   fmt.Sprintf("hostnet-cri-%d", pid),
		bridge:    fmt.Sprintf("hncri%d", pid%100000),
		subnet:    netip.MustParsePrefix(fmt.Sprintf("10.235.%d.0/24", pid%200)),
		hostNetNS: hostNetNS,
	}
	if systemd {
		// Short: containerd's socket paths must fit in sun_path.
		base, err := os.MkdirTemp("", "hn-cri-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		e.base = base
		e.box = systemdbox.Start(t, base, binDir, containerdDir(t))
	}
	e.ipamDir = e.tempDir(t)
	e.gateway = e.subnet.Addr().Next()

	// The CNI bridge plugin leaves its bridge behind; so may a failed
	// hostnet bridge-mode attach. Registered first, so it runs after the
	// daemon's Stop.
	e.hostnetBridge = fmt.Sprintf("hncrb%d", pid%100000)
	hostnetBridge := e.hostnetBridge
	e.hostnetSubnet = netip.MustParsePrefix(fmt.Sprintf("10.237.%d.0/24", pid%200))
	t.Cleanup(func() {
		for _, name := range []string{e.bridge, hostnetBridge} {
			if link, err := netlink.LinkByName(name); err == nil {
				if err := netlink.LinkDel(link); err != nil {
					t.Errorf("delete bridge %s: %v", name, err)
				}
			}
		}
		removeCNICache(t, e.netName)
	})

	confDir := e.tempDir(t)
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       e.netName,
		"plugins": []any{
			map[string]any{
				"type":      "bridge",
				"bridge":    e.bridge,
				"isGateway": true,
				// No masquerading: the pod talks to its bridge only, and
				// the host's iptables stay untouched.
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": e.ipamDir,
					"ranges":  [][]map[string]string{{{"subnet": e.subnet.String(), "gateway": e.gateway.String()}}},
				},
			},
			// No pod asks for port mappings, so portmap adds no rule.
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-hostnet-cri.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("hostnet-cri-%d", pid)
	e.cgroupParent = "/" + ns
	dcfg := daemon.Config{BinDir: binDir, Namespace: ns, Containerd: containerd, Ctr: ctr}
	// For pods that ask for bridge mode: a bridge and IPAM private to the
	// test.
	bridgeConfig := fmt.Sprintf("[network.bridge]\nname = %q\nsubnet = %q\nstate_dir = %q\n",
		hostnetBridge, e.hostnetSubnet.String(), e.tempDir(t))
	nodeConfig, configPathDoc := bridgeConfig, ""
	if o.hardened {
		e.hardened = true
		nodeConfig = "[network]\nhardened = true\n" + bridgeConfig
	}
	if o.configPathHandler {
		configPathDoc = bridgeConfig
	}
	if e.box != nil {
		dcfg.TempDir, dcfg.Command = e.base, e.box.Command
	}
	d, err := daemon.StartCRI(ctx, dcfg, daemon.CRIConfig{
		SandboxImage:   criPauseImage,
		CNIBinDirs:     []string{criCNIBinDir},
		CNIConfDir:     confDir,
		PodAnnotations: []string{"hostnet.containerd.io/*"},
		// containerd's CRI defaults, including the unprivileged port and
		// ICMP sysctls in every pod with its own netns, except where this
		// machine withholds CAP_SYS_RESOURCE from root: the sandbox's
		// oom_score_adj of -998 then fails for any runtime.
		RestrictOOMScoreAdj: !daemon.CanLowerOOMScore(),
		HostnetConfig:       nodeConfig,
		ConfigPathHandler:   configPathDoc,
		SystemdCgroup:       systemd,
		RuncBinary:          o.runc,

		RuncOptionsHandler: o.runcOptionsHandler,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", d.LogPath, d.LogTail(60))
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop CRI containerd: %v", err)
		}
	})

	// Images: the pause image from a static Go program, and busybox.
	work := e.tempDir(t)
	pause, err := buildTestTool(ctx, "pause", work)
	if err != nil {
		t.Fatal(err)
	}
	pauseTar, busyboxTar := filepath.Join(work, "pause.tar"), filepath.Join(work, "busybox.tar")
	if _, err := image.WriteStaticFile(pauseTar, image.StaticOptions{Binary: pause, Name: criPauseImage}); err != nil {
		t.Fatal(err)
	}
	if _, err := image.WriteFile(busyboxTar, image.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, archive := range []string{pauseTar, busyboxTar} {
		if err := d.ImportImageIn(ctx, daemon.CRINamespace, archive); err != nil {
			t.Fatal(err)
		}
	}

	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.rt = runtimeapi.NewRuntimeServiceClient(conn)
	e.img = runtimeapi.NewImageServiceClient(conn)
	if e.ctr, err = client.New(d.Address, client.WithDefaultNamespace(daemon.CRINamespace)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ctr.Close() })

	e.waitReady(ctx, t)
	return e
}

// waitReady waits until CRI reports runtime and network ready (the CNI
// config is loaded) and lists both images, so that no RunPodSandbox can
// try to pull.
func (e *criEnv) waitReady(ctx context.Context, t *testing.T) {
	t.Helper()
	var why string
	for {
		why = ""
		st, err := e.rt.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			why = err.Error()
		} else {
			for _, c := range st.GetStatus().GetConditions() {
				// Other conditions, such as deprecation warnings (cgroup
				// v1), do not keep pods from running.
				if (c.Type == runtimeapi.RuntimeReady || c.Type == runtimeapi.NetworkReady) && !c.Status {
					why += fmt.Sprintf("%s: %s %s; ", c.Type, c.Reason, c.Message)
				}
			}
		}
		for _, ref := range []string{criPauseImage, image.DefaultName} {
			if why != "" {
				break
			}
			resp, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			if err != nil {
				why = err.Error()
			} else if resp.GetImage() == nil {
				why = "CRI does not list image " + ref
			}
		}
		if why == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("CRI not ready: %s", why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// goTool is the go command that runs this test, for building the pause
// program.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// buildTestTool builds integration/testdata/NAME into dir, or returns the
// copy prebuilt in $HOSTNET_TEST_TOOLS (the cgroup v2 guest has no Go).
func buildTestTool(ctx context.Context, name, dir string) (string, error) {
	if tools := os.Getenv("HOSTNET_TEST_TOOLS"); tools != "" {
		return filepath.Join(tools, name), nil
	}
	repo, err := daemon.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	build := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./integration/testdata/"+name)
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
	}
	return bin, nil
}

// removeCNICache removes what libcni cached for the test's network in its
// default cache directory, should a CNI DEL not have run.
func removeCNICache(t *testing.T, netName string) {
	for _, dir := range []string{"/var/lib/cni/results", "/var/lib/cni/cache/results"} {
		files, _ := filepath.Glob(filepath.Join(dir, netName+"-*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("remove CNI cache %s: %v", f, err)
			}
		}
	}
}

func criCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pod is a pod sandbox run through CRI, with its containers.
type pod struct {
	e          *criEnv
	id         string
	config     *runtimeapi.PodSandboxConfig
	containers []string
}

// runPod runs a pod sandbox with the hostnet handler. The cleanup stops
// and removes it (and so its containers) if the test did not.
func (e *criEnv) runPod(t *testing.T, hostNetwork bool, annotations map[string]string) *pod {
	t.Helper()
	return e.runPodWith(t, e.podConfig(t, hostNetwork, annotations), daemon.CRIHandler)
}

// runPodWith is runPod for any pod config and runtime handler.
func (e *criEnv) runPodWith(t *testing.T, cfg *runtimeapi.PodSandboxConfig, handler string) *pod {
	t.Helper()
	resp, err := e.rt.RunPodSandbox(criCtx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	p := &pod{e: e, id: resp.PodSandboxId, config: cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil && status.Code(err) != codes.NotFound {
			t.Errorf("cleanup: StopPodSandbox %s: %v", p.id, err)
		}
		if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil && status.Code(err) != codes.NotFound {
			t.Errorf("cleanup: RemovePodSandbox %s: %v", p.id, err)
		}
	})
	return p
}

// podConfig is what the kubelet would send for a pod with one container:
// unique metadata, a cgroup parent below the daemon's test tree, a DNS
// config that points at loopback only (nothing here resolves names), and
// the network namespace mode hostNetwork asks for.
func (e *criEnv) podConfig(t *testing.T, hostNetwork bool, annotations map[string]string) *runtimeapi.PodSandboxConfig {
	name := strings.Trim(notIDChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	name = fmt.Sprintf("%s-%d", name, idSeq.Add(1))
	if len(name) > 63 {
		name = name[len(name)-63:]
	}
	netMode := runtimeapi.NamespaceMode_POD
	hostname := name
	if hostNetwork {
		netMode, hostname = runtimeapi.NamespaceMode_NODE, ""
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: name + "-uid", Namespace: "hostnet-test"},
		Hostname:     hostname,
		LogDirectory: e.tempDir(t),
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}, Options: []string{"ndots:1"}},
		Labels:       map[string]string{"app": "hostnet-cri-test"},
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: e.podCgroupParent(name),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: netMode, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
}

// podCgroupParent is the cgroup parent the kubelet gives a pod: a
// directory below the test's tree with the cgroupfs driver, the pod's
// slice with the systemd driver (a dash in a slice name nests, so the
// kubelet writes the uid's dashes as underscores).
func (e *criEnv) podCgroupParent(name string) string {
	if e.box != nil {
		uid := strings.ReplaceAll(name, "-", "_")
		return "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid + ".slice"
	}
	return e.cgroupParent + "/pod-" + name
}

// tempDir is a new directory that containerd can use: t.TempDir(), or one
// below the directory bound into the systemd sandbox.
func (e *criEnv) tempDir(t *testing.T) string {
	t.Helper()
	if e.base == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(e.base, "d")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startContainer creates and starts a busybox container in the pod that
// sleeps until SIGTERM, and waits until CRI reports it running.
func (p *pod) startContainer(t *testing.T, name string) string {
	t.Helper()
	return p.startContainerWith(t, name, nil)
}

// startContainerWith is startContainer with the volume mounts mounts.
func (p *pod) startContainerWith(t *testing.T, name string, mounts []*runtimeapi.Mount) string {
	t.Helper()
	ctx := criCtx(t)
	id := p.createContainerWith(t, name, mounts)
	if _, err := p.e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	st, err := p.e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	if s := st.GetStatus(); s.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || s.GetMetadata().GetName() != name {
		t.Fatalf("ContainerStatus after start: state %v, name %q; want RUNNING %q", s.GetState(), s.GetMetadata().GetName(), name)
	}
	return id
}

// createContainerWith creates the container startContainerWith starts.
func (p *pod) createContainerWith(t *testing.T, name string, mounts []*runtimeapi.Mount) string {
	t.Helper()
	resp, err := p.e.rt.CreateContainer(criCtx(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: image.DefaultName},
			// sh as pid 1 ignores SIGTERM without a handler.
			Command: []string{"sh", "-c", `trap "exit 0" TERM; sleep 1000 & wait`},
			LogPath: name + ".log",
			Mounts:  mounts,
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: p.config.Linux.SecurityContext.NamespaceOptions,
			}},
		},
		SandboxConfig: p.config,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	p.containers = append(p.containers, resp.ContainerId)
	return resp.ContainerId
}

// exec runs a command in a container with ExecSync and returns stdout; it
// fails the test on a non-zero exit.
func (p *pod) exec(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	resp, err := p.e.rt.ExecSync(criCtx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	if resp.ExitCode != 0 {
		t.Fatalf("ExecSync %v: exit %d, stderr %q", cmd, resp.ExitCode, resp.Stderr)
	}
	return strings.TrimSpace(string(resp.Stdout))
}

// podTrace is what a pod holds on the host while it runs.
type podTrace struct {
	ids      []string // sandbox and container ids
	shims    map[string]int
	cgroups  []string
	netnsDir string // path of the pod's netns, "" for hostNetwork
}

// trace records the pod's shims, cgroups and netns while it runs.
func (p *pod) trace(t *testing.T) podTrace {
	t.Helper()
	tr := podTrace{ids: append([]string{p.id}, p.containers...), shims: map[string]int{}}
	shims, err := p.e.d.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tr.ids {
		if pid, ok := shims[id]; ok {
			tr.shims[id] = pid
		}
		c, err := p.e.ctr.LoadContainer(t.Context(), id)
		if err != nil {
			t.Fatalf("containerd has no container %s: %v", id, err)
		}
		s, err := c.Spec(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s.Linux != nil && s.Linux.CgroupsPath != "" {
			if !strings.HasPrefix(s.Linux.CgroupsPath, p.e.cgroupParent+"/") {
				t.Errorf("%s: cgroupsPath %s not below %s", id, s.Linux.CgroupsPath, p.e.cgroupParent)
			}
			if !cgroupExists(t, s.Linux.CgroupsPath) {
				t.Errorf("running %s has no cgroup %s", id, s.Linux.CgroupsPath)
			}
			tr.cgroups = append(tr.cgroups, s.Linux.CgroupsPath)
		}
		if id == p.id {
			if ns, ok := spec.NetworkNamespace(s); ok {
				tr.netnsDir = ns.Path
			}
		}
	}
	if len(tr.shims) == 0 {
		t.Fatalf("no shim serves pod %s (shims: %v)", p.id, shims)
	}
	t.Logf("pod %.12s: shims %v, cgroups %v, netns %q", p.id, tr.shims, tr.cgroups, tr.netnsDir)
	return tr
}

// stopAndRemove takes the pod down the way the kubelet does: each
// container stopped (SIGTERM, which it obeys) and removed, then the
// sandbox stopped and removed.
func (p *pod) stopAndRemove(t *testing.T) {
	t.Helper()
	ctx := criCtx(t)
	for _, id := range p.containers {
		if _, err := p.e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 30}); err != nil {
			t.Fatalf("StopContainer %s: %v", id, err)
		}
		st, err := p.e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		if s := st.GetStatus(); s.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || s.GetExitCode() != 0 {
			t.Errorf("after StopContainer: state %v exit %d reason %q, want EXITED 0 (SIGTERM obeyed)", s.GetState(), s.GetExitCode(), s.GetReason())
		}
		if _, err := p.e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("RemoveContainer %s: %v", id, err)
		}
	}
	if _, err := p.e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := p.e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// assertGone checks that a removed pod left nothing: no CRI or containerd
// record, task bundle, runtime state, mount, shim, cgroup or netns.
func (e *criEnv) assertGone(t *testing.T, tr podTrace) {
	t.Helper()
	ctx := criCtx(t)
	pods, err := e.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctrs, err := e.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tr.ids {
		if slices.ContainsFunc(pods.Items, func(s *runtimeapi.PodSandbox) bool { return s.Id == id }) ||
			slices.ContainsFunc(ctrs.Containers, func(c *runtimeapi.Container) bool { return c.Id == id }) {
			t.Errorf("CRI still lists %s", id)
		}
		if _, err := e.ctr.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
			t.Errorf("containerd still has container %s (err=%v)", id, err)
		}
		bundle := filepath.Join(e.d.State, "io.containerd.runtime.v2.task", daemon.CRINamespace, id)
		if _, err := os.Stat(bundle); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("task bundle %s still exists (err=%v)", bundle, err)
		}
		assertNoMounts(t, id)
	}
	// hostnet-runc's state root is in the daemon's directory.
	_ = filepath.WalkDir(filepath.Join(e.d.Dir, "hostnet-runc"), func(p string, de fs.DirEntry, err error) error {
		if err == nil && slices.Contains(tr.ids, de.Name()) {
			t.Errorf("runtime state %s still exists", p)
		}
		return nil
	})
	for id, pid := range tr.shims {
		if !daemon.WaitGone(pid, 10*time.Second) {
			t.Errorf("shim pid %d of %s still running", pid, id)
		}
	}
	if shims, err := e.d.ShimPids(); err != nil {
		t.Error(err)
	} else {
		for _, id := range tr.ids {
			if pid, ok := shims[id]; ok {
				t.Errorf("shim pid %d still serves %s", pid, id)
			}
		}
	}
	for _, cg := range tr.cgroups {
		if cgroupExists(t, cg) {
			t.Errorf("cgroup %s still exists", cg)
		}
	}
	if tr.netnsDir != "" {
		if _, err := os.Stat(tr.netnsDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("pod netns %s still exists (err=%v)", tr.netnsDir, err)
		}
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(mountinfo)) {
		if strings.Contains(line, "nsfs") && strings.Contains(line, e.d.Dir) {
			t.Errorf("netns mount left: %s", strings.TrimSpace(line))
		}
	}
}

// assertNetworkClean checks that no pod is left on the CNI network: no
// veth on its bridge, no host-local lease, no libcni cache entry.
func (e *criEnv) assertNetworkClean(t *testing.T) {
	t.Helper()
	if br, err := netlink.LinkByName(e.bridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("veth %s still on bridge %s", l.Attrs().Name, e.bridge)
			}
		}
	}
	leases, _ := os.ReadDir(filepath.Join(e.ipamDir, e.netName))
	for _, l := range leases {
		if _, err := netip.ParseAddr(l.Name()); err == nil {
			t.Errorf("host-local lease %s left in %s", l.Name(), e.ipamDir)
		}
	}
	for _, dir := range []string{"/var/lib/cni/results", "/var/lib/cni/cache/results"} {
		if left, _ := filepath.Glob(filepath.Join(dir, e.netName+"-*")); len(left) > 0 {
			t.Errorf("libcni cache entries left: %v", left)
		}
	}
}

// annotationsOf returns the OCI annotations containerd recorded for id.
func (e *criEnv) annotationsOf(t *testing.T, id string) map[string]string {
	t.Helper()
	c, err := e.ctr.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s.Annotations
}

// testHostNetworkPod: a hostNetwork pod with the hostnet handler shares the
// node's network namespace and hostname, and goes away without a trace.
func (e *criEnv) testHostNetworkPod(t *testing.T) {
	p := e.runPod(t, true, nil)
	id := p.startContainer(t, "app")
	tr := p.trace(t)

	if got := p.exec(t, id, "readlink", "/proc/self/ns/net"); got != e.hostNetNS {
		t.Errorf("container netns %s, host %s; want the host's", got, e.hostNetNS)
	}
	node, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.exec(t, id, "hostname"); got != node {
		t.Errorf("hostname in the container %q, want the node's %q", got, node)
	}
	if got := p.exec(t, id, "cat", "/etc/hostname"); got != node {
		t.Errorf("/etc/hostname in the container %q, want the node's %q", got, node)
	}
	// hostnet adds the host's resolv.conf only where the spec mounts none:
	// CRI's, from the pod's DNS config, must win.
	if got := p.exec(t, id, "cat", "/etc/resolv.conf"); !strings.Contains(got, "nameserver 127.0.0.1") {
		t.Errorf("/etc/resolv.conf is not the pod's DNS config:\n%s", got)
	}
	st, err := e.rt.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.GetStatus(); s.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY ||
		s.GetLinux().GetNamespaces().GetOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE || s.GetRuntimeHandler() != daemon.CRIHandler {
		t.Errorf("PodSandboxStatus: state %v, network %v, handler %q; want READY, NODE, %q",
			s.GetState(), s.GetLinux().GetNamespaces().GetOptions().GetNetwork(), s.GetRuntimeHandler(), daemon.CRIHandler)
	}
	if tr.netnsDir != "" {
		t.Errorf("hostNetwork sandbox spec joins netns %s", tr.netnsDir)
	}
	// With the node's file saying hardened, the host-mode sandbox has no
	// CAP_NET_RAW: the shim read the file its containerd's environment
	// names. Nor has its app container, which CRI has join the sandbox's
	// netns, the host's, by path (it kept CAP_NET_RAW before).
	for what, pid := range map[string]int{"sandbox": e.taskPid(t, p.id), "app container": e.taskPid(t, id)} {
		if raw := hasCapNetRaw(t, pid); raw == e.hardened {
			t.Errorf("node file hardened %v: the %s's bounding set has CAP_NET_RAW %v", e.hardened, what, raw)
		}
	}

	p.stopAndRemove(t)
	e.assertGone(t, tr)
}

// hasCapNetRaw reports whether process pid's bounding set holds
// CAP_NET_RAW, which CRI gives by default and hostnet's hardened host mode
// drops.
func hasCapNetRaw(t *testing.T, pid int) bool {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("pid %d: bounding set %q: %v", pid, v, err)
			}
			return bnd&(1<<unix.CAP_NET_RAW) != 0
		}
	}
	t.Fatalf("pid %d: no CapBnd in its status", pid)
	return false
}

// testPodNetwork: a normal pod with the hostnet handler keeps the network
// CRI and CNI give it. Its containers join the sandbox's netns by path and
// hostnet's default host mode leaves that alone: eth0 with an address on
// the test's CNI bridge, reachable from the bridge.
func (e *criEnv) testPodNetwork(t *testing.T) {
	p := e.runPod(t, false, nil)
	id := p.startContainer(t, "app")
	tr := p.trace(t)
	e.assertOnPodNetwork(t, p, id, tr)

	p.stopAndRemove(t)
	e.assertGone(t, tr)
	e.assertNetworkClean(t)
}

// assertOnPodNetwork checks that container id is in the pod's own netns,
// the one CNI attached to the test's bridge.
func (e *criEnv) assertOnPodNetwork(t *testing.T, p *pod, id string, tr podTrace) {
	t.Helper()
	if tr.netnsDir == "" {
		t.Fatal("the sandbox spec joins no netns by path")
	}
	netns := p.exec(t, id, "readlink", "/proc/self/ns/net")
	if netns == e.hostNetNS {
		t.Errorf("container is in the host's netns %s; want the pod's", netns)
	}
	// The sandbox's netns, as pinned by CRI, is the container's.
	var pinned syscall.Stat_t
	if err := syscall.Stat(tr.netnsDir, &pinned); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", pinned.Ino); netns != want {
		t.Errorf("container netns %s, pod's pinned netns %s (%s)", netns, want, tr.netnsDir)
	}
	addr := eth0Addr(t, p.exec(t, id, "ip", "-o", "-4", "addr", "show", "dev", "eth0"))
	if !e.subnet.Contains(addr) || addr == e.gateway {
		t.Errorf("eth0 address %s, want one in %s other than the gateway", addr, e.subnet)
	}
	t.Logf("container netns %s (host %s), eth0 %s", netns, e.hostNetNS, addr)
	st, err := e.rt.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil {
		t.Fatal(err)
	}
	if ip := st.GetStatus().GetNetwork().GetIp(); ip != addr.String() {
		t.Errorf("PodSandboxStatus IP %q, eth0 has %s", ip, addr)
	}
	// Traffic to the test's own bridge only.
	p.exec(t, id, "ping", "-c", "1", "-W", "5", e.gateway.String())
}

// testAnnotationNone: with pod_annotations = ["hostnet.containerd.io/*"],
// a pod annotation reaches the OCI specs of the sandbox and its
// containers, so the shim sees it. "none" means "leave the spec's
// namespaces as they are", and CRI's spec joins the pod's netns: the
// container keeps its CNI network.
func (e *criEnv) testAnnotationNone(t *testing.T) {
	p := e.runPod(t, false, map[string]string{spec.NetworkAnnotation: string(spec.ModeNone), "unrelated.example.com/x": "y"})
	id := p.startContainer(t, "app")
	tr := p.trace(t)
	for _, cid := range tr.ids {
		ann := e.annotationsOf(t, cid)
		if got := ann[spec.NetworkAnnotation]; got != string(spec.ModeNone) {
			t.Errorf("%s: OCI annotation %s = %q, want %q", cid, spec.NetworkAnnotation, got, spec.ModeNone)
		}
		if _, ok := ann["unrelated.example.com/x"]; ok {
			t.Errorf("%s: an annotation outside pod_annotations reached the OCI spec", cid)
		}
	}
	e.assertOnPodNetwork(t, p, id, tr)
	p.stopAndRemove(t)
	e.assertGone(t, tr)
	e.assertNetworkClean(t)
}

// testAnnotationHost: an explicit "host" annotation is hostnet's "force
// host networking": the shim drops even a netns joined by path, so a
// hostNetwork=false pod's sandbox and containers run in the node's netns,
// although CRI and CNI still set up (and later tear down) the pod netns
// and report its address.
//
// With containerd's default enable_unprivileged_ports/_icmp, CRI puts its
// net.ipv4 sysctls in such a pod's sandbox spec. They are containerd's,
// not the pod author's: the shim drops exactly them, says so in its log,
// and the node's settings stay as they were.
func (e *criEnv) testAnnotationHost(t *testing.T) {
	before := criHostSysctls(t)
	p := e.runPod(t, false, map[string]string{spec.NetworkAnnotation: string(spec.ModeHost)})
	id := p.startContainer(t, "app")
	tr := p.trace(t)
	if got := p.exec(t, id, "readlink", "/proc/self/ns/net"); got != e.hostNetNS {
		t.Errorf("container netns %s; with %s=host want the host's %s", got, spec.NetworkAnnotation, e.hostNetNS)
	}
	if tr.netnsDir == "" {
		t.Error("CRI's sandbox spec should still name the pod netns")
	}
	// containerd's record of the sandbox has its defaults (the test
	// exercises them), the spec the runtime ran has not.
	recorded := e.specOf(t, p.id)
	ran := e.bundleSpec(t, p.id)
	for k, v := range criDefaultSysctls {
		if got := recorded.Linux.Sysctl[k]; got != v {
			t.Errorf("containerd's sandbox spec has %s=%q, want CRI's default %q", k, got, v)
		}
		if got, ok := ran.Linux.Sysctl[k]; ok {
			t.Errorf("the sandbox ran with %s=%q in the host's netns", k, got)
		}
	}
	logText, err := os.ReadFile(e.d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dropped containerd's default sysctls net.ipv4.ip_unprivileged_port_start=0, net.ipv4.ping_group_range=0 2147483647",
		`msg="network mode" id=` + p.id + " mode=host"} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("containerd's log does not say %q", want)
		}
	}
	if after := criHostSysctls(t); after != before {
		t.Errorf("the host's sysctls changed: %q, were %q", after, before)
	}
	p.stopAndRemove(t)
	e.assertGone(t, tr)
	e.assertNetworkClean(t)
}

// criDefaultSysctls are what containerd's CRI adds by default to the
// sandbox spec of a pod with a netns of its own.
var criDefaultSysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}

// criHostSysctls reads the host's values of criDefaultSysctls.
func criHostSysctls(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(criDefaultSysctls)) {
		v, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s;", k, strings.TrimSpace(string(v)))
	}
	return b.String()
}

// testAnnotationHostSysctls: a pod author's own net.* sysctls are not
// containerd's defaults: a pod forced into host mode that sets one (here
// ip_unprivileged_port_start=80, a Kubernetes "safe" sysctl, which keeps
// CRI from adding its own) is refused, naming it.
func (e *criEnv) testAnnotationHostSysctls(t *testing.T) {
	cfg := e.podConfig(t, false, map[string]string{spec.NetworkAnnotation: string(spec.ModeHost)})
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}
	e.assertRunPodConfigRejected(t, cfg, "sysctls net.ipv4.ip_unprivileged_port_start would change the host's network settings")
}

// specOf is containerd's record of id's OCI spec, as CRI made it.
func (e *criEnv) specOf(t *testing.T, id string) *specs.Spec {
	t.Helper()
	c, err := e.ctr.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bundleSpec is the config.json of id's task bundle: what the shim gave
// the runtime.
func (e *criEnv) bundleSpec(t *testing.T, id string) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.d.State, "io.containerd.runtime.v2.task", daemon.CRINamespace, id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// testAnnotationInvalid: an invalid mode fails RunPodSandbox with the
// shim's error, which names the annotation, and leaves nothing behind.
func (e *criEnv) testAnnotationInvalid(t *testing.T) {
	e.assertRunPodRejected(t, "bogus", spec.NetworkAnnotation, `invalid network mode "bogus"`)
}

// testAnnotationBridge: hostnet's bridge mode gives a container a netns of
// its own, but CRI's sandbox spec of a hostNetwork=false pod joins the pod
// netns CNI set up, by path. The shim refuses to replace it (an explicit
// mode is not silently ignored): RunPodSandbox fails with InvalidArgument
// and CRI cleans up, CNI included.
func (e *criEnv) testAnnotationBridge(t *testing.T) {
	e.assertRunPodRejected(t, string(spec.ModeBridge), "bridge network mode cannot be used with a spec that joins network namespace")
}

// testBridgeHostNetworkPod: a hostNetwork pod is on the node's network by
// contract, and the kubelet reports the node's IP as its IP: asking it for
// hostnet's bridge mode fails RunPodSandbox with InvalidArgument saying
// so, and nothing of hostnet's bridge is set up.
func (e *criEnv) testBridgeHostNetworkPod(t *testing.T) {
	cfg := e.podConfig(t, true, map[string]string{spec.NetworkAnnotation: string(spec.ModeBridge)})
	e.assertRunPodConfigRejected(t, cfg, spec.NetworkAnnotation+"=bridge: a hostNetwork pod is on the node's network")
	if _, err := netlink.LinkByName(e.hostnetBridge); err == nil {
		t.Errorf("hostnet's bridge %s was created for a refused hostNetwork pod", e.hostnetBridge)
	}
}

// assertRunPodRejected runs a hostNetwork=false pod whose network
// annotation is mode and checks that RunPodSandbox fails with
// InvalidArgument, an error containing every one of want, and leaves no
// sandbox, shim or CNI attachment behind.
func (e *criEnv) assertRunPodRejected(t *testing.T, mode string, want ...string) {
	t.Helper()
	e.assertRunPodConfigRejected(t, e.podConfig(t, false, map[string]string{spec.NetworkAnnotation: mode}), want...)
}

// assertRunPodConfigRejected is assertRunPodRejected for any pod config.
func (e *criEnv) assertRunPodConfigRejected(t *testing.T, cfg *runtimeapi.PodSandboxConfig, want ...string) {
	t.Helper()
	ctx := criCtx(t)
	resp, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: daemon.CRIHandler})
	if err == nil {
		_, _ = e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		_, _ = e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		t.Fatalf("RunPodSandbox with annotations %v, sysctls %v succeeded", cfg.Annotations, cfg.GetLinux().GetSysctls())
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RunPodSandbox: code %v, want InvalidArgument", status.Code(err))
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("RunPodSandbox error does not say %q: %v", w, err)
		}
	}
	t.Logf("RunPodSandbox: %v", err)
	pods, err := e.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pods.Items {
		if s.Metadata.GetName() == cfg.Metadata.Name {
			t.Errorf("failed sandbox %s still listed (state %v)", s.Id, s.State)
		}
	}
	shims, err := e.d.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	if len(shims) > 0 {
		t.Errorf("shims left after the failed RunPodSandbox: %v", shims)
	}
	e.assertNetworkClean(t)
}
