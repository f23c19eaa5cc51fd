package integration

// User-namespaced pods (hostUsers: false) and recursive read-only volumes
// through containerd's CRI, with the hostnet handler and, to compare,
// containerd's runc shim running runc 1.5.2 in the same containerd.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/spec"
)

// TestCRIUserNamespaces: containerd's CRI reports the hostnet handler with
// the features runc's has (user namespaces, recursive read-only mounts),
// and pods that use them run through it as through runc's: a
// user-namespaced pod whose app container joins the sandbox's user
// namespace, with an idmapped volume, on the pod's network and in hostnet's
// host mode; a pod whose recursively read-only volume has its submounts
// read-only.
//
// containerd 2.x's CRI starts a user-namespaced pod's containers with
// runc's options type (IoUid, IoGid; containerd issue 11091): a handler
// whose options are hostnet's (ConfigPath, daemon.CRIConfigPathHandler)
// fails there, in containerd, before the shim is asked. The recommended
// handler, daemon.CRIHandler, has no options table and hostnet's settings
// in the node's file ($HOSTNET_CONFIG here, /etc/containerd/hostnet.toml on
// a node), which the shim reads under runc's options too: it runs those
// pods with hostnet's settings, as does the shim registered with runc's
// options type (daemon.CRIRuncOptionsHandler). The node's file sets
// hardened, which the host-mode pods show: the file was read.
func TestCRIUserNamespaces(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("the CRI runtime handler under test is hostnet's")
	}
	if _, err := os.Stat(runc152); err != nil {
		t.Fatalf("runc 1.5.2, the reference: %v", err)
	}
	e := startCRIEnvWith(t, criEnvOptions{runc: runc152, runcOptionsHandler: true, hardened: true, configPathHandler: true})
	t.Run("HandlerFeatures", e.testHandlerFeatures)
	for _, h := range []string{daemon.CRIHandler, daemon.CRIRuncOptionsHandler, daemon.CRIRuncHandler} {
		t.Run("UserNamespacedPod/"+h, func(t *testing.T) { e.testUserNamespacedPod(t, h, nil) })
	}
	// A user-namespaced pod has a netns of its own; hostnet's host mode
	// puts it in the host's instead, which a user namespace allows (the
	// pod's root has no privilege over that netns).
	for _, h := range []string{daemon.CRIHandler, daemon.CRIRuncOptionsHandler} {
		t.Run("UserNamespacedPodHostMode/"+h, func(t *testing.T) {
			e.testUserNamespacedPod(t, h, map[string]string{spec.NetworkAnnotation: string(spec.ModeHost)})
		})
	}
	t.Run("UserNamespacedPodRefused/"+daemon.CRIConfigPathHandler, e.testUserNamespacedPodRefused)
	for _, h := range []string{daemon.CRIHandler, daemon.CRIConfigPathHandler, daemon.CRIRuncOptionsHandler, daemon.CRIRuncHandler} {
		t.Run("RecursiveReadOnlyVolume/"+h, func(t *testing.T) { e.testRecursiveReadOnlyVolume(t, h) })
	}
}

// testHandlerFeatures: CRI's Status lists the hostnet handler with user
// namespaces and recursive read-only mounts, as it lists runc's.
func (e *criEnv) testHandlerFeatures(t *testing.T) {
	st, err := e.rt.Status(criCtx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	features := map[string]*runtimeapi.RuntimeHandlerFeatures{}
	for _, h := range st.GetRuntimeHandlers() {
		features[h.GetName()] = h.GetFeatures()
	}
	runc := features[daemon.CRIRuncHandler]
	t.Logf("handler features: %v", features)
	if !runc.GetUserNamespaces() || !runc.GetRecursiveReadOnlyMounts() {
		t.Fatalf("runc's handler reports %v: the comparison needs both features", runc)
	}
	for _, h := range []string{daemon.CRIHandler, daemon.CRIConfigPathHandler, daemon.CRIRuncOptionsHandler} {
		if f := features[h]; !f.GetUserNamespaces() || !f.GetRecursiveReadOnlyMounts() {
			t.Errorf("handler %s reports %v, want user_namespaces and recursive_read_only_mounts as runc's", h, f)
		}
	}
}

// criUsernsSize is the size of a pod's id ranges, as the kubelet gives.
const criUsernsSize = 65536

// criUsernsHostID is the first host id of the test's pods' ranges: a
// multiple of 65536, as the kubelet allocates, per test process.
func criUsernsHostID() uint32 {
	return uint32(criUsernsSize * (1024 + os.Getpid()%8192))
}

// userNamespacedPodConfig is podConfig with hostUsers: false, ids from
// hostID on.
func (e *criEnv) userNamespacedPodConfig(t *testing.T, hostID uint32, annotations map[string]string) *runtimeapi.PodSandboxConfig {
	cfg := e.podConfig(t, false, annotations)
	ids := []*runtimeapi.IDMapping{{HostId: hostID, ContainerId: 0, Length: criUsernsSize}}
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{
		Mode: runtimeapi.NamespaceMode_POD, Uids: ids, Gids: ids,
	}
	return cfg
}

// testUserNamespacedPod runs a user-namespaced pod with handler and checks
// what its app container sees: the pod's id maps, the sandbox's user
// namespace (joined by path), root-owned image files, an idmapped volume
// whose host-root files are its root's and whose new files are the host
// root's, and a plain volume whose host-root files are nobody's and not
// writable. annotations set hostnet's network mode; the container is in
// the host's netns with host mode, else in the pod's.
func (e *criEnv) testUserNamespacedPod(t *testing.T, handler string, annotations map[string]string) {
	hostID := criUsernsHostID()
	cfg := e.userNamespacedPodConfig(t, hostID, annotations)

	// Volumes in a directory only the host's root may enter, as a pod's
	// are below the kubelet's root-dir.
	idmapped, plain := e.criVolume(t, 0o700), e.criVolume(t, 0o755)
	for _, dir := range []string{idmapped, plain} {
		if err := os.WriteFile(filepath.Join(dir, "hostfile"), []byte("host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids := []*runtimeapi.IDMapping{{HostId: hostID, ContainerId: 0, Length: criUsernsSize}}
	mounts := []*runtimeapi.Mount{
		{ContainerPath: "/idmapped", HostPath: idmapped, UidMappings: ids, GidMappings: ids},
		{ContainerPath: "/plain", HostPath: plain},
	}

	p := e.runPodWith(t, cfg, handler)
	id := p.startContainerWith(t, "app", mounts)
	e.assertHostnetRan(t, handler, p.id, id)

	wantMap := fmt.Sprintf("0 %d %d", hostID, criUsernsSize)
	for _, f := range []string{"uid_map", "gid_map"} {
		if got := strings.Join(strings.Fields(p.exec(t, id, "cat", "/proc/self/"+f)), " "); got != wantMap {
			t.Errorf("/proc/self/%s in the container %q, want %q", f, got, wantMap)
		}
	}
	sandboxNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", e.taskPid(t, p.id)))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.exec(t, id, "readlink", "/proc/self/ns/user"); got != sandboxNS {
		t.Errorf("the app container's user namespace %s, the sandbox's %s: want the same", got, sandboxNS)
	}
	if host, _ := os.Readlink("/proc/self/ns/user"); sandboxNS == host {
		t.Errorf("the sandbox runs in the host's user namespace %s", host)
	}
	if got := p.exec(t, id, "id", "-u"); got != "0" {
		t.Errorf("id -u in the container %q, want 0", got)
	}
	if got := p.exec(t, id, "stat", "-c", "%u:%g", "/bin/busybox"); got != "0:0" {
		t.Errorf("the image's /bin/busybox is owned by %s in the container, want 0:0", got)
	}

	// The idmapped volume: the host root's files are the container root's,
	// and what the container's root writes is the host root's.
	if got := p.exec(t, id, "stat", "-c", "%u:%g", "/idmapped/hostfile"); got != "0:0" {
		t.Errorf("the idmapped volume's host-root file is owned by %s in the container, want 0:0", got)
	}
	p.exec(t, id, "sh", "-c", "echo container > /idmapped/new")
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(idmapped, "new"), &st); err != nil {
		t.Fatalf("the container's file in the idmapped volume: %v", err)
	} else if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("the container root's file in the idmapped volume is owned by %d:%d on the host, want 0:0", st.Uid, st.Gid)
	}
	// The plain volume: the host's root is nobody there, and its files
	// are not the container's to change.
	if got := p.exec(t, id, "stat", "-c", "%u:%g", "/plain/hostfile"); got != "65534:65534" {
		t.Errorf("the plain volume's host-root file is owned by %s in the container, want 65534:65534 (unmapped)", got)
	}
	if code, stderr := p.execResult(t, id, "sh", "-c", "echo x >> /plain/hostfile"); code == 0 {
		t.Error("the container's root wrote to a host-root file of a volume that is not idmapped")
	} else {
		t.Logf("write to the plain volume: exit %d, %s", code, strings.TrimSpace(stderr))
	}

	netns := p.exec(t, id, "readlink", "/proc/self/ns/net")
	hostMode := annotations[spec.NetworkAnnotation] == string(spec.ModeHost)
	if handler != daemon.CRIRuncHandler {
		// The node's file says hardened: host mode drops CAP_NET_RAW,
		// which CRI gives by default, as the pod's own netns keeps it.
		if raw, want := hasCapNetRaw(t, e.taskPid(t, id)), !hostMode || !e.hardened; raw != want {
			t.Errorf("handler %s, host mode %v, node file hardened %v: the bounding set has CAP_NET_RAW %v, want %v",
				handler, hostMode, e.hardened, raw, want)
		}
	}
	if hostMode {
		if netns != e.hostNetNS {
			t.Errorf("container netns %s; with %s=host want the host's %s", netns, spec.NetworkAnnotation, e.hostNetNS)
		}
		// The container's root has no privilege over the host's netns.
		if code, _ := p.execResult(t, id, "ip", "link", "add", "hnuserns0", "type", "dummy"); code == 0 {
			t.Error("the user-namespaced container's root added a link to the host's netns")
			if l, err := netlink.LinkByName("hnuserns0"); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	} else if netns == e.hostNetNS {
		t.Errorf("container netns %s is the host's: want the pod's", netns)
	}
	p.stopAndRemove(t)
}

// testUserNamespacedPodRefused: containerd 2.x's CRI cannot start the app
// container of a user-namespaced pod with a handler whose options table
// is hostnet's document (ConfigPath): it writes the pipes' owner into
// runc's options type, which these options are not. This is why
// contrib/kubernetes/README.md recommends no options table and the node's
// file. Should a containerd start it, that advice is out of date.
func (e *criEnv) testUserNamespacedPodRefused(t *testing.T) {
	p := e.runPodWith(t, e.userNamespacedPodConfig(t, criUsernsHostID(), nil), daemon.CRIConfigPathHandler)
	id := p.createContainerWith(t, "app", nil)
	_, err := e.rt.StartContainer(criCtx(t), &runtimeapi.StartContainerRequest{ContainerId: id})
	const want = `can't unmarshal type "runtimeoptions.v1.Options" to output "containerd.runc.v1.Options"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("StartContainer of a user-namespaced pod's container on handler %s: %v, want containerd's %q", daemon.CRIConfigPathHandler, err, want)
	}
	t.Logf("refused as documented: %v", err)
}

// testRecursiveReadOnlyVolume runs, with handler, a pod whose volume has a
// submount (a tmpfs) twice: read-only, where the submount stays writable,
// and recursively read-only, where it is read-only too, as is the top.
func (e *criEnv) testRecursiveReadOnlyVolume(t *testing.T, handler string) {
	dir := e.criVolume(t, 0o755)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("hostnet-rro-test", sub, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", sub, err)
		}
	})
	mounts := []*runtimeapi.Mount{
		{ContainerPath: "/ro", HostPath: dir, Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		{ContainerPath: "/rro", HostPath: dir, Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
	}
	p := e.runPodWith(t, e.podConfig(t, false, nil), handler)
	id := p.startContainerWith(t, "app", mounts)
	e.assertHostnetRan(t, handler, p.id, id)

	for _, path := range []string{"/ro/top", "/rro/top", "/rro/sub/file"} {
		code, stderr := p.execResult(t, id, "touch", path)
		if code == 0 {
			t.Errorf("touch %s succeeded in a read-only volume", path)
		} else if !strings.Contains(stderr, "Read-only file system") {
			t.Errorf("touch %s: exit %d, %q; want EROFS", path, code, stderr)
		}
	}
	// Without rro the submount is writable: the check above can fail.
	p.exec(t, id, "touch", "/ro/sub/file")
	mountinfo := p.exec(t, id, "cat", "/proc/self/mountinfo")
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && (f[4] == "/rro" || f[4] == "/rro/sub") && !strings.HasPrefix(f[5], "ro") {
			t.Errorf("mount %s is not read-only: %s", f[4], line)
		}
	}
	p.stopAndRemove(t)
	// Private propagation: the host's submount is still writable.
	if err := os.WriteFile(filepath.Join(sub, "host"), nil, 0o644); err != nil {
		t.Errorf("the host's submount after the pod: %v", err)
	}
}

// assertHostnetRan checks that the hostnet shim ran the containers ids
// under a hostnet handler, and did not under runc's: it logs each one's
// network mode.
func (e *criEnv) assertHostnetRan(t *testing.T, handler string, ids ...string) {
	t.Helper()
	logText, err := os.ReadFile(e.d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		logged := strings.Contains(string(logText), `msg="network mode" id=`+id)
		if want := handler != daemon.CRIRuncHandler; logged != want {
			t.Errorf("handler %s: the hostnet shim logged the network mode of %s: %v, want %v", handler, id, logged, want)
		}
	}
}

// criVolume is a new directory for a pod's volume, with mode perm, inside a
// directory only the host's root may enter.
func (e *criEnv) criVolume(t *testing.T, perm os.FileMode) string {
	t.Helper()
	parent := e.tempDir(t)
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "volume")
	if err := os.Mkdir(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

// taskPid is the pid of the task of the container (or sandbox) id.
func (e *criEnv) taskPid(t *testing.T, id string) int {
	t.Helper()
	ctx := criCtx(t)
	c, err := e.ctr.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("containerd has no container %s: %v", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task of %s: %v", id, err)
	}
	return int(task.Pid())
}

// execResult runs a command in a container with ExecSync and returns its
// exit code and stderr.
func (p *pod) execResult(t *testing.T, id string, cmd ...string) (int32, string) {
	t.Helper()
	resp, err := p.e.rt.ExecSync(criCtx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	return resp.ExitCode, string(resp.Stderr)
}
