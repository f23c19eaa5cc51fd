package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/spec"
)

// TestUserNamespacedPods: hostUsers: false pods run under RuntimeClass
// hostnet, registered as contrib/kubernetes/README.md recommends (no
// options table, hostnet's settings in the node's file), which containerd
// 2.x needs for them: on the CNI pod network, and on the node's with the
// host annotation. The kubelet picks the pod's ids; its root is root
// inside only.
func TestUserNamespacedPods(t *testing.T) {
	c := need(t)
	handler := daemon.CRIHandler
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: handler}, Handler: handler}
	if _, err := c.client.NodeV1().RuntimeClasses().Create(ctx(t), rc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, mode := range []string{"pod", string(spec.ModeHost)} {
		t.Run(mode, func(t *testing.T) {
			pod := newPod("userns-"+mode, false, "sleep", "600")
			no := false
			pod.Spec.RuntimeClassName, pod.Spec.HostUsers = &handler, &no
			if mode == string(spec.ModeHost) {
				pod.Annotations = map[string]string{spec.NetworkAnnotation: mode}
			}
			p := c.run(t, pod)
			for _, file := range []string{"uid_map", "gid_map"} {
				f := strings.Fields(c.mustExec(t, pod.Name, "cat", "/proc/self/"+file))
				if len(f) != 3 || f[0] != "0" || f[1] == "0" || f[2] != "65536" {
					t.Errorf("/proc/self/%s in the pod %q, want 0 <the kubelet's host id> 65536", file, f)
				}
			}
			if got := c.mustExec(t, pod.Name, "id", "-u"); got != "0" {
				t.Errorf("id -u %q, want 0", got)
			}
			netns := c.mustExec(t, pod.Name, "readlink", "/proc/self/ns/net")
			if mode == string(spec.ModeHost) {
				if netns != c.nodeNetNS(t) {
					t.Errorf("pod netns %s, want the node's %s", netns, c.nodeNetNS(t))
				}
				if got := c.modeOf(t, p); got != mode {
					t.Errorf("the shim ran the sandbox in mode %q, want %q", got, mode)
				}
			} else if netns == c.nodeNetNS(t) {
				t.Error("pod in the node's netns")
			}
		})
	}
}

// TestRecursiveReadOnlyVolume: a hostPath volume mounted with
// recursiveReadOnly: Enabled under RuntimeClass hostnet is read-only with
// the tmpfs mounted below it.
func TestRecursiveReadOnlyVolume(t *testing.T) {
	c := need(t)
	dir := c.path("rro-volume")
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("hostnet-kube-rro", sub, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", sub, err)
		}
	})
	pod := newPod("rro", false, "sleep", "600")
	rro := corev1.RecursiveReadOnlyEnabled
	pod.Spec.Volumes = []corev1.Volume{{Name: "vol", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "vol", MountPath: "/rro", ReadOnly: true, RecursiveReadOnly: &rro}}
	c.run(t, pod)
	for _, path := range []string{"/rro/file", "/rro/sub/file"} {
		if got := c.mustExec(t, pod.Name, "sh", "-c", "touch "+path+" 2>&1 || true"); !strings.Contains(got, "Read-only file system") {
			t.Errorf("touch %s in a recursively read-only volume: %q, want EROFS", path, got)
		}
	}
}
