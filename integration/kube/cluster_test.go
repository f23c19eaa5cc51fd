package kube

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// Versions and where contrib/build-kubernetes.sh caches them.
const (
	kubeBinDir = "/var/cache/hostnet/kubernetes-v1.37.2/bin"
	etcdBinDir = "/var/cache/hostnet/etcd-v3.7.0/bin"
)

// Fixed ports: everything listens on the loopback of the cluster's own
// network namespace, where nothing else runs.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	apiserverPort  = 6443
	kubeletPort    = 10250
	nodeName       = "localhost"
	// nodeIP is the node's address, on a veth link in the cluster's
	// netns: the kubelet refuses a loopback node IP.
	nodeIP = "10.253.0.1"
)

// pauseImage is the sandbox image, built here; .invalid is never pulled.
const pauseImage = "hostnet.invalid/pause:kube"

// busyboxImage is the busybox test image under the name the contrib
// manifests use.
const busyboxImage = "docker.io/library/busybox:1.36"

// kubeletSysctls are the host sysctls the kubelet sets
// (setupKernelTunables); it writes copies of them instead.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// cluster is a single-node Kubernetes: etcd, kube-apiserver and a kubelet,
// on a containerd whose CRI runs pods with hostnet, all in one network
// namespace (containerd's, daemon.Config.NetNS).
type cluster struct {
	dir      string
	d        *daemon.Daemon
	procs    []*proc
	rest     *rest.Config
	client   *kubernetes.Clientset
	cniNet   string
	ipamDir  string
	rootDir  string // the kubelet's, a shared mount
	sysctls  map[string]string
	stopOnce bool
	proxy    net.Listener
	proxyURL *url.URL
}

// proc is a process of the cluster, logging to a file in dir.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startCluster(ctx context.Context, binDir string) (c *cluster, retErr error) {
	dir, err := os.MkdirTemp("", "hostnet-kube-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	c = &cluster{dir: dir, cniNet: fmt.Sprintf("hostnet-kube-%d", os.Getpid()), sysctls: map[string]string{}}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, c.stop())
		}
	}()
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return c, err
		}
		c.sysctls[k] = string(v)
	}
	if err := c.startContainerd(ctx, binDir); err != nil {
		return c, err
	}
	if err := c.startEtcd(); err != nil {
		return c, err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return c, err
	}
	if err := c.startKubelet(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// startContainerd starts containerd with CRI for the hostnet handler,
// containerd's CRI defaults otherwise, and a CNI bridge network.
func (c *cluster) startContainerd(ctx context.Context, binDir string) error {
	confDir := c.path("cni-net.d")
	c.ipamDir = c.path("cni-ipam")
	for _, d := range []string{confDir, c.ipamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       c.cniNet,
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{"type": "host-local", "dataDir": c.ipamDir,
					"ranges": [][]map[string]string{{{"subnet": podSubnet.String(), "gateway": podSubnet.Addr().Next().String()}}}}},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, _ := json.MarshalIndent(conflist, "", "  ")
	if err := os.WriteFile(filepath.Join(confDir, "10-hostnet-kube.conflist"), data, 0o644); err != nil {
		return err
	}
	d, err := daemon.StartCRI(ctx, daemon.Config{BinDir: binDir, Namespace: fmt.Sprintf("hostnet-kube-%d", os.Getpid()), TempDir: c.dir, NetNS: true},
		daemon.CRIConfig{
			SandboxImage:   pauseImage,
			CNIBinDirs:     []string{"/usr/lib/cni"},
			CNIConfDir:     confDir,
			PodAnnotations: []string{"hostnet.containerd.io/*"},
			// containerd's defaults but where root lacks CAP_SYS_RESOURCE
			// here, which negative OOM scores (the sandbox's -998) take.
			RestrictOOMScoreAdj: !daemon.CanLowerOOMScore(),
			HostnetConfig:       "[network.bridge]\nname = \"hnkube0\"\nsubnet = \"10.91.0.0/24\"\nstate_dir = " + fmt.Sprintf("%q", c.path("hostnet-ipam")) + "\n",
		})
	if err != nil {
		return err
	}
	c.d = d
	if err := addNodeAddress(d); err != nil {
		return err
	}
	// The pause program and busybox, as the contrib manifests name it.
	repo, err := daemon.RepoRoot()
	if err != nil {
		return err
	}
	pause := c.path("pause")
	build := exec.CommandContext(ctx, goTool(), "build", "-o", pause, "./integration/testdata/pause")
	build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build pause: %w\n%s", err, out)
	}
	pauseTar, busyboxTar := c.path("pause.tar"), c.path("busybox.tar")
	if _, err := image.WriteStaticFile(pauseTar, image.StaticOptions{Binary: pause, Name: pauseImage}); err != nil {
		return err
	}
	if _, err := image.WriteFile(busyboxTar, image.Options{Name: busyboxImage}); err != nil {
		return err
	}
	for _, archive := range []string{pauseTar, busyboxTar} {
		if err := d.ImportImageIn(ctx, daemon.CRINamespace, archive); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) startEtcd() error {
	data := c.path("etcd")
	peer := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	client := fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort)
	err := c.start("etcd", filepath.Join(etcdBinDir, "etcd"), "--name", "hostnet", "--data-dir", data,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "hostnet="+peer,
		"--listen-metrics-urls", "", "--log-level", "warn")
	if err != nil {
		return err
	}
	return c.waitHTTP("etcd", client+"/health")
}

// adminToken authenticates the test and the kubelet (AlwaysAllow).
var adminToken = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

func (c *cluster) startAPIServer(ctx context.Context) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyFile, pubFile := c.path("sa.key"), c.path("sa.pub")
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	tokens := c.path("tokens.csv")
	if err := os.WriteFile(tokens, []byte(adminToken+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	err = c.start("kube-apiserver", filepath.Join(kubeBinDir, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClientPort),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiserverPort), "--advertise-address="+nodeIP,
		"--cert-dir="+c.path("apiserver-pki"), "--token-auth-file="+tokens, "--authorization-mode=AlwaysAllow",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+pubFile,
		"--service-account-signing-key-file="+keyFile, "--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none", "--kubelet-preferred-address-types=InternalIP",
		"--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	if err := c.startProxy(); err != nil {
		return err
	}
	c.rest = &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", apiserverPort),
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		// Every request, streams included, through a CONNECT proxy on
		// the host's loopback that dials in the cluster's netns.
		Proxy: http.ProxyURL(c.proxyURL),
		QPS:   50,
		Burst: 100,
	}
	if c.client, err = kubernetes.NewForConfig(c.rest); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		body, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		if time.Now().After(deadline) || c.exited("kube-apiserver") {
			return fmt.Errorf("kube-apiserver not ready: %w %s\n%s", err, body, c.tail("kube-apiserver", 30))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startKubelet runs the kubelet in containerd's netns and a mount
// namespace of its own in which the host sysctls it sets are copies and
// /var/log is the cluster's: it must not change this host. Its root
// directory is a shared mount, so the volumes it mounts there reach
// containerd.
func (c *cluster) startKubelet(ctx context.Context) error {
	c.rootDir = c.path("kubelet")
	podLogs := c.path("pod-logs")
	for _, d := range []string{c.rootDir, podLogs, c.path("varlog"), c.path("sysctl")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount(c.rootDir, c.rootDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", c.rootDir, err)
	}
	if err := unix.Mount("", c.rootDir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", c.rootDir, err)
	}
	cgroupRoot := "/" + c.d.Namespace
	if err := makeCgroup(cgroupRoot); err != nil {
		return err
	}
	kubeconfig := c.path("kubelet.kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: hostnet
  cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: hostnet
  context: {cluster: hostnet, user: admin}
current-context: hostnet
`, apiserverPort, adminToken), 0o600); err != nil {
		return err
	}
	config := c.path("kubelet.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
podLogsDir: %s
volumePluginDir: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
rotateCertificates: false
serverTLSBootstrap: false
syncFrequency: 5s
nodeStatusUpdateFrequency: 5s
evictionHard: {"memory.available": "50Mi", "nodefs.available": "1%%", "imagefs.available": "1%%", "nodefs.inodesFree": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
enableControllerAttachDetach: false
`, nodeIP, kubeletPort, c.d.Address, cgroupRoot, podLogs, c.path("volume-plugins")), 0o644); err != nil {
		return err
	}
	// The wrapper: copies of the sysctls bound over them, the cluster's
	// /var/log over the host's (the kubelet links container logs in
	// /var/log/containers) and an empty /var/lib (it makes
	// /var/lib/kubelet/device-plugins whatever its root directory), then
	// the kubelet.
	script := `set -e
dir=$1; shift
for k in ` + strings.Join(kubeletSysctls, " ") + `; do
	f=$dir/sysctl/$(echo "$k" | tr / _)
	cat "/proc/sys/$k" > "$f"
	mount --bind "$f" "/proc/sys/$k"
done
mount --bind "$dir/varlog" /var/log
mount -t tmpfs -o mode=755,size=16m hostnet-kube /var/lib
exec "$@"`
	err := c.start("kubelet", "nsenter", "--net="+c.d.NetNSPath(), "--",
		"unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script, "sh", c.dir,
		filepath.Join(kubeBinDir, "kubelet"), "--config="+config, "--kubeconfig="+kubeconfig,
		"--root-dir="+c.rootDir, "--cert-dir="+c.path("kubelet-pki"), "--hostname-override="+nodeName, "--node-ip="+nodeIP, "--v=2")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && nodeReady(node) {
			// The kubelet reads an unknown configuration field leniently,
			// warning only: a misspelt setting would silently not apply.
			if log, _ := os.ReadFile(c.path("kubelet.log")); bytes.Contains(log, []byte("strict decoding error")) {
				return fmt.Errorf("the kubelet's configuration has unknown fields:\n%s", c.tail("kubelet", 200))
			}
			return nil
		}
		if time.Now().After(deadline) || c.exited("kubelet") {
			return fmt.Errorf("node %s not ready: %w\n%s", nodeName, err, c.tail("kubelet", 40))
		}
		time.Sleep(time.Second)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// start runs a process in containerd's network namespace (the kubelet
// enters it itself), logging to <dir>/<name>.log.
func (c *cluster) start(name, bin string, args ...string) error {
	var cmd *exec.Cmd
	if name == "kubelet" {
		cmd = exec.Command(bin, args...)
	} else {
		cmd = exec.Command("nsenter", append([]string{"--net=" + c.d.NetNSPath(), "--", bin}, args...)...)
	}
	p := &proc{name: name, cmd: cmd, log: c.path(name + ".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

func (c *cluster) proc(name string) *proc {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (c *cluster) exited(name string) bool {
	p := c.proc(name)
	if p == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail is the last n lines of a process's log.
func (c *cluster) tail(name string, n int) string {
	data, _ := os.ReadFile(c.path(name + ".log"))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *cluster) waitHTTP(name, url string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: c.d.DialContext}}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) || c.exited(name) {
			return fmt.Errorf("%s not serving %s: %w\n%s", name, url, err, c.tail(name, 30))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (c *cluster) path(name string) string { return filepath.Join(c.dir, name) }

// stop deletes every pod (the kubelet tears them down), stops the kubelet,
// containerd (which removes what is left), the API server and etcd, each
// by pid, then unmounts and removes the cluster's directory.
func (c *cluster) stop() error {
	if c.stopOnce {
		return nil
	}
	c.stopOnce = true
	var errs []error
	if c.client != nil && !c.exited("kubelet") {
		errs = append(errs, c.deleteAllPods())
	}
	c.stopProc("kubelet")
	if c.d != nil {
		errs = append(errs, c.removeSandboxes())
		errs = append(errs, c.d.Stop())
	}
	if c.proxy != nil {
		c.proxy.Close()
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		c.stopProc(name)
	}
	if c.dir != "" {
		mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(c.dir))
		errs = append(errs, err)
		slices.SortFunc(mounts, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
		for _, m := range mounts {
			if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
			}
		}
		if left, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(c.dir)); len(left) > 0 {
			errs = append(errs, fmt.Errorf("not removing %s: %d mounts left", c.dir, len(left)))
		} else if os.Getenv("HOSTNET_KUBE_KEEP") == "" {
			errs = append(errs, os.RemoveAll(c.dir))
		}
	}
	if c.d != nil {
		errs = append(errs, removeCgroup("/"+c.d.Namespace))
	}
	for k, v := range c.sysctls {
		if now, err := os.ReadFile("/proc/sys/" + k); err == nil && string(now) != v {
			errs = append(errs, fmt.Errorf("the host's %s changed from %q to %q", k, strings.TrimSpace(v), strings.TrimSpace(string(now))))
		}
	}
	return errors.Join(errs...)
}

func (c *cluster) stopProc(name string) {
	p := c.proc(name)
	if p == nil || c.exited(name) {
		return
	}
	// The kubelet's pid is its wrapper's: nsenter, unshare and sh exec.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(30 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// removeSandboxes stops and removes through CRI the pod sandboxes the
// kubelet had not garbage-collected yet, as it would: CNI's teardown runs
// then, and containerd's Stop finds nothing of the pods.
func (c *cluster) removeSandboxes() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+c.d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteAllPods deletes the pods of every namespace and waits until the
// kubelet has torn them down.
func (c *cluster) deleteAllPods() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nss, err := c.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, ns := range nss.Items {
		err := c.client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	for {
		pods, err := c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pods left: %v", podNames(pods))
		}
		time.Sleep(time.Second)
	}
}

func podNames(pods *corev1.PodList) []string {
	if pods == nil {
		return nil
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return names
}

// startProxy serves HTTP CONNECT on the host's loopback, dialing the
// target in the cluster's network namespace: client-go's streaming
// executors (exec, port-forward) honour a proxy, not a dial function.
func (c *cluster) startProxy() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.proxy, c.proxyURL = l, &url.URL{Scheme: "http", Host: l.Addr().String()}
	dial := c.d.DialContext
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				host, _, err := net.SplitHostPort(req.Host)
				if err != nil || host != "127.0.0.1" {
					fmt.Fprint(conn, "HTTP/1.1 403 Forbidden\r\n\r\n")
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				up, err := dial(ctx, "tcp", req.Host)
				cancel()
				if err != nil {
					fmt.Fprint(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
				go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return nil
}

// addNodeAddress gives the cluster's netns the node's address, on one end
// of a veth pair whose both ends stay there (this kernel has no dummy
// links): traffic to it stays in the namespace.
func addNodeAddress(d *daemon.Daemon) error {
	h, err := d.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hnnode0"}, PeerName: "hnnode1"}
	if err := h.LinkAdd(link); err != nil {
		return fmt.Errorf("add the node's link: %w", err)
	}
	peer, err := h.LinkByName("hnnode1")
	if err == nil {
		err = h.LinkSetUp(peer)
	}
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(nodeIP + "/32")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(link, addr); err != nil {
		return err
	}
	return h.LinkSetUp(link)
}

// makeCgroup creates a cgroup in every v1 hierarchy and in v2.
func makeCgroup(path string) error {
	mounts, err := daemon.CgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := os.MkdirAll(filepath.Join(m, path), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// removeCgroup removes a cgroup tree, deepest first, in every hierarchy.
func removeCgroup(path string) error {
	mounts, err := daemon.CgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		root := filepath.Join(m, path)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
