package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/integration/internal/systemdbox"
)

// TestSystemdCgroupThroughContainerd runs containerd with the hostnet shim
// inside a sandbox whose init is a real systemd, and a container with
// SystemdCgroup = true and a "slice:prefix:name" cgroupsPath, the way
// Kubernetes' systemd cgroup driver configures containerd: the container's
// cgroup is a transient scope with the limits as properties, the shim's
// metrics read it, an exec joins it, and deleting the task removes it.
func TestSystemdCgroupThroughContainerd(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("tests the hostnet runtime's systemd driver")
	}
	ctx := t.Context()
	// Short: containerd's socket paths must fit in sun_path.
	parent, err := os.MkdirTemp("", "hn-sd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	box := systemdbox.Start(t, parent, binDir, containerdDir(t))
	d, err := daemon.Start(ctx, daemon.Config{
		BinDir:    binDir,
		Namespace: fmt.Sprintf("hostnet-sd-%d", os.Getpid()),
		TempDir:   parent,
		Command:   box.Command,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the sandbox, so it runs before the sandbox is killed:
	// tasks are deleted through containerd while systemd still runs.
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	if err := d.ImportBusybox(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := d.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	img, err := c.GetImage(ctx, image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}

	id := "sd-" + strconv.Itoa(os.Getpid())
	unit := "hostnet-it-" + id + ".scope"
	cgPath := "/system.slice/" + unit
	const memLimit = 48 << 20
	ctr, err := c.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(daemon.HostnetRuntime, &options.Options{SystemdCgroup: true}),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000"),
			oci.WithCgroup("system.slice:hostnet-it:"+id), oci.WithMemoryLimit(memLimit)),
	)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("create task with SystemdCgroup: %v\ncontainerd log:\n%s", err, d.LogTail(20))
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}

	limitProp := "MemoryLimit"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		limitProp = "MemoryMax" // cgroup v2
	}
	got := box.Show(unit, "ActiveState", "ControlGroup", limitProp)
	if got["ActiveState"] != "active" || got["ControlGroup"] != cgPath || got[limitProp] != strconv.Itoa(memLimit) {
		t.Errorf("unit %s: %v, want active at %s with %s=%d", unit, got, cgPath, limitProp, memLimit)
	}
	// task.Pid is the init's pid in the sandbox's pid namespace, where the
	// shim runs.
	box.CheckCgroup(int(task.Pid()), cgPath)

	m, err := task.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	switch m := data.(type) {
	case *v1stats.Metrics:
		if m.Memory == nil || m.Memory.Usage == nil || m.Memory.Usage.Limit != memLimit {
			t.Errorf("metrics memory = %+v, want the scope's limit %d", m.Memory, memLimit)
		}
	case *v2stats.Metrics:
		if m.Memory == nil || m.Memory.UsageLimit != memLimit || m.Memory.Usage == 0 {
			t.Errorf("metrics memory = %+v, want the scope's usage and limit %d", m.Memory, memLimit)
		}
	default:
		t.Errorf("metrics are %T, want cgroup metrics", data)
	}

	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pspec := *spec.Process
	pspec.Args = []string{"sleep", "1000"}
	exec, err := task.Exec(ctx, "probe", &pspec, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Start(ctx); err != nil {
		t.Fatal(err)
	}
	box.CheckCgroup(int(exec.Pid()), cgPath)

	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exitc:
	case <-time.After(30 * time.Second):
		t.Fatal("task did not exit")
	}
	if st := box.Show(unit, "LoadState")["LoadState"]; st != "not-found" {
		t.Errorf("unit %s after the task was deleted: LoadState=%s, want not-found", unit, st)
	}
	if left := box.LeftCgroups(cgPath); left != "" {
		t.Errorf("cgroups left after delete:\n%s", left)
	}
	if err := ctr.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup); err != nil {
		t.Error(err)
	}
}

// TestCRISystemdCgroup runs a hostNetwork pod through CRI on a node set up
// like a kubelet with the systemd cgroup driver: the pod's cgroup parent is
// its slice, CRI turns it into "slice:cri-containerd:id" cgroupsPaths, and
// hostnet (told by [runtime] systemd_cgroup in its CRI options) puts the
// sandbox and the container into scopes in that slice. Stats come from
// there; removing the pod removes the scopes.
func TestCRISystemdCgroup(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("the CRI runtime handler under test is hostnet's")
	}
	e := startCRIEnv(t, true)
	p := e.runPod(t, true, nil)
	cid := p.startContainer(t, "app")
	slice := p.config.Linux.CgroupParent
	for _, id := range []string{p.id, cid} {
		unit := "cri-containerd-" + id + ".scope"
		want := slice + "/" + unit
		if got := e.box.Show(unit, "ActiveState", "ControlGroup"); got["ActiveState"] != "active" || got["ControlGroup"] != want {
			t.Errorf("unit %s: %v, want active at %s", unit, got, want)
		}
	}
	// On cgroup v2 the container has a cgroup namespace of its own, rooted
	// at its scope: "0::/" is the scope, a process elsewhere shows "/..".
	got := p.exec(t, cid, "cat", "/proc/self/cgroup")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if strings.TrimSpace(got) != "0::/" {
			t.Errorf("exec'd process is in\n%s\nwant the root of the container's cgroup namespace, its scope", got)
		}
	} else if !strings.Contains(got, "cri-containerd-"+cid+".scope") {
		t.Errorf("exec'd process is in\n%s\nwant the container's scope", got)
	}
	stats, err := e.rt.ContainerStats(criCtx(t), &runtimeapi.ContainerStatsRequest{ContainerId: cid})
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	if ws := stats.GetStats().GetMemory().GetWorkingSetBytes(); ws == nil || ws.Value == 0 {
		t.Errorf("ContainerStats memory working set = %v, want the scope's usage", ws)
	}
	p.stopAndRemove(t)
	for _, id := range []string{p.id, cid} {
		unit := "cri-containerd-" + id + ".scope"
		if st := e.box.Show(unit, "LoadState")["LoadState"]; st != "not-found" {
			t.Errorf("unit %s after RemovePodSandbox: LoadState=%s, want not-found", unit, st)
		}
		if left := e.box.LeftCgroups(slice + "/" + unit); left != "" {
			t.Errorf("cgroups left after RemovePodSandbox:\n%s", left)
		}
	}
}

// containerdDir is the directory the systemd sandbox must see to run the
// containerd binary the daemon harness picks.
func containerdDir(t *testing.T) string {
	t.Helper()
	dir, err := daemon.ContainerdDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
