package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/hoststate"
	"github.com/hostnet-dev/hostnet/spec"
)

// podSubnet is the CNI pod network's.
var podSubnet = netip.MustParsePrefix("10.90.0.0/24")

// testNamespace holds the lane's pods.
const testNamespace = "hostnet-kube"

var setupOnce sync.Once

// setup applies contrib/kubernetes/runtimeclass.yaml and makes the test
// namespace, whose default service account mounts no token (no
// controller-manager publishes kube-root-ca.crt here).
func (c *cluster) setup(t *testing.T) {
	t.Helper()
	var err error
	setupOnce.Do(func() {
		ctx := context.Background()
		var rc *nodev1.RuntimeClass
		if rc, err = decode[*nodev1.RuntimeClass]("runtimeclass.yaml"); err != nil {
			return
		}
		if _, err = c.client.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}
		if _, err = c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return
		}
		no := false
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}, AutomountServiceAccountToken: &no}
		if _, err = c.client.CoreV1().ServiceAccounts(testNamespace).Create(ctx, sa, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			_, err = c.client.CoreV1().ServiceAccounts(testNamespace).Update(ctx, sa, metav1.UpdateOptions{})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// decode reads a manifest of contrib/kubernetes.
func decode[T any](name string) (T, error) {
	var zero T
	repo, err := daemon.RepoRoot()
	if err != nil {
		return zero, err
	}
	data, err := os.ReadFile(filepath.Join(repo, "contrib", "kubernetes", name))
	if err != nil {
		return zero, err
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	v, ok := obj.(T)
	if !ok {
		return zero, fmt.Errorf("%s holds a %T", name, obj)
	}
	return v, nil
}

// newPod is a busybox pod with RuntimeClass hostnet on the node.
func newPod(name string, hostNetwork bool, command ...string) *corev1.Pod {
	rc, grace := "hostnet", int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RuntimeClassName:              &rc,
			NodeName:                      nodeName,
			HostNetwork:                   hostNetwork,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "app",
				Image:           busyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         command,
			}},
		},
	}
}

// run creates the pod in the test namespace on the node, deletes it when
// the test ends, and waits until it runs with every container ready.
func (c *cluster) run(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	c.create(t, pod)
	return c.waitPod(t, pod.Name, "running and ready", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && podReady(p) })
}

func (c *cluster) create(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	c.setup(t)
	pod.Namespace, pod.Spec.NodeName = testNamespace, nodeName
	if _, err := c.client.CoreV1().Pods(testNamespace).Create(ctx(t), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	t.Cleanup(func() { c.deletePod(t, pod.Name) })
}

// deletePod deletes a pod and waits until the kubelet has torn it down.
func (c *cluster) deletePod(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	zero := int64(0)
	err := c.client.CoreV1().Pods(testNamespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("delete pod %s: %v", name, err)
		return
	}
	for {
		_, err := c.client.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("pod %s still there: %v", name, err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitPod polls the pod until ok, failing with its status and events.
func (c *cluster) waitPod(t *testing.T, name, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := c.client.CoreV1().Pods(testNamespace).Get(ctx(t), name, metav1.GetOptions{})
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not %s: %v; status %+v\nevents:\n%s", name, what, err, p.Status, c.events(t, name))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// events are the pod's events, one a line.
func (c *cluster) events(t *testing.T, name string) string {
	evs, err := c.client.CoreV1().Events(testNamespace).List(ctx(t), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range evs.Items {
		fmt.Fprintf(&b, "%s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// mustExec runs a command in the pod's container the way `kubectl exec`
// does (SPDY through the API server and the kubelet to CRI's stream
// server) and returns its output.
func (c *cluster) mustExec(t *testing.T, pod string, cmd ...string) string {
	t.Helper()
	req := c.client.CoreV1().RESTClient().Post().Resource("pods").Name(pod).Namespace(testNamespace).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "app", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exe, err := remotecommand.NewSPDYExecutor(c.rest, http.MethodPost, req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := exe.StreamWithContext(ctx(t), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec %v in %s: %v: %s", cmd, pod, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

type fixedSize remotecommand.TerminalSize

func (s fixedSize) Next() *remotecommand.TerminalSize {
	ts := remotecommand.TerminalSize(s)
	return &ts
}

func (c *cluster) logs(t *testing.T, pod string, previous bool) string {
	t.Helper()
	out, err := c.client.CoreV1().Pods(testNamespace).GetLogs(pod, &corev1.PodLogOptions{Container: "app", Previous: previous}).DoRaw(ctx(t))
	if err != nil {
		t.Fatalf("logs of %s: %v", pod, err)
	}
	return string(out)
}

// portForward forwards a local loopback port to the pod's port, like
// `kubectl port-forward`, and returns the local address.
func (c *cluster) portForward(t *testing.T, pod string, port int) string {
	t.Helper()
	req := c.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(testNamespace).Name(pod).SubResource("portforward")
	transport, upgrader, err := spdy.RoundTripperFor(c.rest)
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	stop, ready := make(chan struct{}), make(chan struct{})
	var out, errOut bytes.Buffer
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v: %s", err, errOut.String())
	case <-time.After(time.Minute):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("port-forward ports %v: %v", ports, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
}

// httpGet fetches a page through a local address (a port-forward).
func httpGet(t *testing.T, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET via %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body))
}

// nodeNetNS is the node's network namespace as a container's readlink
// shows it: containerd's.
func (c *cluster) nodeNetNS(t *testing.T) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(c.d.NetNSPath(), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// modeOf is the network mode the shim logged for the pod's sandbox, which
// containerd's CRI labels with the pod's uid.
func (c *cluster) modeOf(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	ctr, err := client.New(c.d.Address, client.WithDefaultNamespace(daemon.CRINamespace))
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Close()
	sandboxes, err := ctr.Containers(ctx(t), fmt.Sprintf(`labels."io.kubernetes.pod.uid"==%s,labels."io.cri-containerd.kind"==sandbox`, p.UID))
	if err != nil || len(sandboxes) != 1 {
		t.Fatalf("sandbox of pod %s: %v, %d found", p.Name, err, len(sandboxes))
	}
	data, err := os.ReadFile(c.d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	modes := regexp.MustCompile(`msg="network mode" id=` + sandboxes[0].ID() + ` mode=(\w+)`).FindSubmatch(data)
	if modes == nil {
		t.Fatalf("the shim logged no network mode for sandbox %s", sandboxes[0].ID())
	}
	return string(modes[1])
}

// httpd serves body on port with busybox's httpd.
func httpd(body string, addr string) []string {
	return []string{"sh", "-c", "mkdir -p /www && echo " + body + " > /www/index.html && exec httpd -f -p " + addr + " -h /www"}
}

// TestHostNetworkPod: a hostNetwork pod under RuntimeClass hostnet is in
// the node's netns with the node's IP; logs, exec, exec -it and
// port-forward work; an HTTP readiness probe on the node's loopback
// passes.
func TestHostNetworkPod(t *testing.T) {
	c := need(t)
	pod := newPod("host-net", true, httpd("hello-host", "127.0.0.1:18090")...)
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "127.0.0.1", Port: intstr.FromInt32(18090), Path: "/"}}}
	p := c.run(t, pod)
	if p.Status.PodIP != nodeIP {
		t.Errorf("podIP %s, want the node's %s", p.Status.PodIP, nodeIP)
	}
	if got := c.mustExec(t, pod.Name, "readlink", "/proc/self/ns/net"); got != c.nodeNetNS(t) {
		t.Errorf("netns %s, want the node's %s", got, c.nodeNetNS(t))
	}
	if got := c.modeOf(t, p); got != string(spec.ModeHost) {
		t.Errorf("mode %s, want host", got)
	}
	checkExecTTY(t, c, pod.Name)
	if got := httpGet(t, c.portForward(t, pod.Name, 18090)); got != "hello-host" {
		t.Errorf("GET through port-forward = %q", got)
	}
	c.mustExec(t, pod.Name, "sh", "-c", "echo to-the-log > /proc/1/fd/1")
	if logs := c.logs(t, pod.Name, false); !strings.Contains(logs, "to-the-log") {
		t.Errorf("logs = %q", logs)
	}
}

// checkExecTTY is `kubectl exec -it`: a terminal of the size the client
// sent, and what is typed reaching the shell. Like a user, it exits only
// once it has seen the answer.
func checkExecTTY(t *testing.T, c *cluster, pod string) {
	t.Helper()
	stdin, typing := io.Pipe()
	out := &watchWriter{want: "typed-42", seen: make(chan struct{})}
	go func() {
		defer typing.Close()
		fmt.Fprint(typing, "tty; stty size; echo typed-$((6*7))\n")
		select {
		case <-out.seen:
		case <-time.After(30 * time.Second):
		}
		fmt.Fprint(typing, "exit 0\n")
	}()
	req := c.client.CoreV1().RESTClient().Post().Resource("pods").Name(pod).Namespace(testNamespace).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "app", Command: []string{"sh"}, Stdin: true, Stdout: true, TTY: true}, scheme.ParameterCodec)
	exe, err := remotecommand.NewSPDYExecutor(c.rest, http.MethodPost, req.URL())
	if err != nil {
		t.Fatal(err)
	}
	err = exe.StreamWithContext(ctx(t), remotecommand.StreamOptions{Stdin: stdin, Stdout: out, Tty: true, TerminalSizeQueue: fixedSize{Width: 111, Height: 33}})
	got := out.String()
	if err != nil {
		t.Fatalf("exec -it: %v: %q", err, got)
	}
	for _, want := range []string{"/dev/pts/", "33 111", "typed-42"} {
		if !strings.Contains(got, want) {
			t.Errorf("exec -it output lacks %q:\n%s", want, got)
		}
	}
}

// watchWriter collects output and says when want has appeared in it.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestPodNetwork: a pod on the CNI pod network under RuntimeClass hostnet
// keeps it (hostnet's default host mode leaves a joined netns alone):
// its own netns, podIP on the pod network, probes from the kubelet to the
// pod IP, port-forward, exec -it, and its CPU and memory limits in its
// cgroup.
func TestPodNetwork(t *testing.T) {
	c := need(t)
	pod := newPod("pod-net", false, httpd("hello-pod", "80")...)
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80), Path: "/"}}}
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}
	p := c.run(t, pod)
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !podSubnet.Contains(ip) {
		t.Errorf("podIP %q, want one in %s", p.Status.PodIP, podSubnet)
	}
	if got := c.mustExec(t, pod.Name, "readlink", "/proc/self/ns/net"); got == c.nodeNetNS(t) {
		t.Errorf("pod in the node's netns")
	}
	if got := c.mustExec(t, pod.Name, "ip", "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(got, " "+p.Status.PodIP+"/") {
		t.Errorf("eth0 %q does not hold the podIP %s", got, p.Status.PodIP)
	}
	checkExecTTY(t, c, pod.Name)
	if got := httpGet(t, c.portForward(t, pod.Name, 80)); got != "hello-pod" {
		t.Errorf("GET through port-forward = %q", got)
	}
	// Limits, as the container's cgroup holds them (cgroup v1 here).
	for file, want := range map[string]string{"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.cfs_quota_us": "20000"} {
		if got := c.mustExec(t, pod.Name, "cat", "/sys/fs/cgroup/"+file); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
}

// TestProbesAndRestarts: a failing liveness probe and an exiting
// container both get the container restarted by the kubelet, with the
// last state and the previous logs.
func TestProbesAndRestarts(t *testing.T) {
	c := need(t)
	live := newPod("liveness", false, "sh", "-c", "echo started; touch /tmp/alive; exec sleep 600")
	live.Spec.Containers[0].LivenessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/tmp/alive"}}}}
	exits := newPod("exits", false, "sh", "-c", "echo run; sleep 1; exit 3")
	c.create(t, exits)
	c.run(t, live)
	c.mustExec(t, live.Name, "rm", "/tmp/alive")
	p := c.waitPod(t, live.Name, "restarted by its liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1 && podReady(p)
	})
	if term := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; term == nil || term.ExitCode != 137 {
		t.Errorf("last termination %+v, want SIGKILLed (137) after the probe failed", term)
	}
	p = c.waitPod(t, exits.Name, "restarted after exiting", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if term := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; term == nil || term.ExitCode != 3 {
		t.Errorf("last termination %+v, want exit code 3", term)
	}
	// The kubelet answers for the instance before the current one; while
	// it restarts the container again that one may be changing.
	deadline := time.Now().Add(30 * time.Second)
	for logs := c.logs(t, exits.Name, true); !strings.Contains(logs, "run"); logs = c.logs(t, exits.Name, true) {
		if time.Now().After(deadline) {
			t.Errorf("previous logs = %q", logs)
			break
		}
		time.Sleep(time.Second)
	}
}

// TestContribManifests: contrib/kubernetes's pods, applied as they are
// (plus the node, as no scheduler runs), do what their comments say.
func TestContribManifests(t *testing.T) {
	c := need(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, mode string
		lines      int // the log lines its command prints before it sleeps
		check      func(t *testing.T, p *corev1.Pod, logs string)
	}{
		{"pod-host.yaml", "host", 2, func(t *testing.T, p *corev1.Pod, logs string) {
			if !strings.Contains(logs, "\n"+hostname+"\n") && !strings.HasSuffix(strings.TrimSpace(logs), hostname) {
				t.Errorf("hostname is not the node's %q:\n%s", hostname, logs)
			}
			if got := c.mustExec(t, p.Name, "readlink", "/proc/self/ns/net"); got != c.nodeNetNS(t) {
				t.Errorf("netns %s, want the node's", got)
			}
		}},
		{"pod-none.yaml", "none", 2, func(t *testing.T, p *corev1.Pod, logs string) {
			if !strings.Contains(logs, ": eth0@") {
				t.Errorf("no eth0 (the pod network) in:\n%s", logs)
			}
		}},
		{"pod-bridge.yaml", "host", 1, func(t *testing.T, p *corev1.Pod, logs string) {
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || !podSubnet.Contains(ip) || !strings.Contains(logs, " "+p.Status.PodIP+"/") {
				t.Errorf("podIP %q and eth0:\n%s\nwant the pod network %s", p.Status.PodIP, logs, podSubnet)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			pod, err := decode[*corev1.Pod](tc.file)
			if err != nil {
				t.Fatal(err)
			}
			p := c.run(t, pod)
			var logs string
			deadline := time.Now().Add(time.Minute)
			for logs = c.logs(t, p.Name, false); strings.Count(logs, "\n") < tc.lines && time.Now().Before(deadline); logs = c.logs(t, p.Name, false) {
				time.Sleep(300 * time.Millisecond)
			}
			if got := c.modeOf(t, p); got != tc.mode {
				t.Errorf("mode %s, want %s", got, tc.mode)
			}
			tc.check(t, p, logs)
		})
	}
}

// TestNetworkAnnotations: hostnet's annotation through a real kubelet,
// with containerd's default CRI config. A pod-network pod forced into host
// mode runs (containerd's default sysctls are dropped, with a warning); a
// hostNetwork pod asking for bridge mode never runs, and the kubelet's
// event says why.
func TestNetworkAnnotations(t *testing.T) {
	c := need(t)
	t.Run("HostOnPodNetwork", func(t *testing.T) {
		pod := newPod("ann-host", false, "sleep", "600")
		pod.Annotations = map[string]string{spec.NetworkAnnotation: "host"}
		p := c.run(t, pod)
		if got := c.mustExec(t, pod.Name, "readlink", "/proc/self/ns/net"); got != c.nodeNetNS(t) {
			t.Errorf("netns %s, want the node's", got)
		}
		if got := c.modeOf(t, p); got != "host" {
			t.Errorf("mode %s", got)
		}
		logText, _ := os.ReadFile(c.d.LogPath)
		if !strings.Contains(string(logText), "dropped containerd's default sysctls net.ipv4.ip_unprivileged_port_start=0") {
			t.Error("the shim did not log dropping containerd's default sysctls")
		}
	})
	t.Run("BridgeOnHostNetworkRefused", func(t *testing.T) {
		pod := newPod("ann-bridge", true, "sleep", "600")
		pod.Annotations = map[string]string{spec.NetworkAnnotation: "bridge"}
		c.create(t, pod)
		want := spec.NetworkAnnotation + "=bridge: a hostNetwork pod is on the node's network"
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(c.events(t, pod.Name), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no event saying %q:\n%s", want, c.events(t, pod.Name))
			}
			time.Sleep(time.Second)
		}
		p, err := c.client.CoreV1().Pods(testNamespace).Get(ctx(t), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodRunning {
			t.Errorf("pod runs")
		}
		st, err := hoststate.Take(c.d.NetNSPath())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range st.Links {
			if strings.HasPrefix(l, "hnkube0 ") {
				t.Error("hostnet's bridge was created for the refused pod")
			}
		}
	})
}
