package main

// Shim memory under Kubernetes' CRI: pods run through containerd's CRI
// plugin the way the kubelet runs them, with hostnet's runtime handler and
// with runc's, each pod's sandbox and containers sharing one shim.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// benchPauseImage is the CRI sandbox image's reference; .invalid is never
// pulled from: the bench imports it before the first pod.
const benchPauseImage = "hostnet.invalid/pause:bench"

// The CRI memory table's rows.
const (
	criRowHostnet = "hostnet (CRI handler hostnet)"
	criRowRunc    = "runc 1.5.2 (CRI handler runc, runc shim)"
)

// criBench is the CRI-enabled containerd of the cri section.
type criBench struct {
	d      *daemon.Daemon
	rt     runtimeapi.RuntimeServiceClient
	cgroup string // pods' cgroup parent tree, /<d.Namespace>
	logs   string // pods' log directories
}

// criPod is one pod sandbox and its containers.
type criPod struct {
	id         string
	containers []string
}

// startCRI starts a second private containerd with its CRI plugin, the
// hostnet handler and runc 1.5.2's, the pause and busybox images imported
// into CRI's namespace, and waits until CRI reports itself ready.
func (b *bench) startCRI(ctx context.Context) (*criBench, error) {
	ns := fmt.Sprintf("hostnet-bench-cri-%d", os.Getpid())
	work := filepath.Join(b.work, "cri")
	confDir := filepath.Join(work, "cni")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, err
	}
	// Pods run on the host's network (hostNetwork): CRI calls no CNI
	// plugin for them. A loopback-only network lets CRI report its network
	// ready without touching the host.
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": ns,
		"plugins": []any{map[string]any{"type": "loopback"}}})
	if err := os.WriteFile(filepath.Join(confDir, "10-loopback.conflist"), conf, 0o644); err != nil {
		return nil, err
	}
	pause, err := buildPause(ctx, work)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	d, err := daemon.StartCRI(sctx, daemon.Config{BinDir: b.o.binDir, Namespace: ns}, daemon.CRIConfig{
		SandboxImage: benchPauseImage,
		CNIBinDirs:   []string{"/usr/lib/cni"},
		CNIConfDir:   confDir,
		// The sandbox's oom_score_adj of -998 needs CAP_SYS_RESOURCE, which
		// some sandboxed machines withhold even from root.
		RestrictOOMScoreAdj: !daemon.CanLowerOOMScore(),
		RuncBinary:          b.o.runc,
	})
	if err != nil {
		return nil, err
	}
	b.onCleanup(d.Stop)
	e := &criBench{d: d, cgroup: "/" + ns, logs: filepath.Join(work, "logs")}
	pauseTar, busyboxTar := filepath.Join(work, "pause.tar"), filepath.Join(work, "busybox.tar")
	if _, err := image.WriteStaticFile(pauseTar, image.StaticOptions{Binary: pause, Name: benchPauseImage}); err != nil {
		return nil, err
	}
	if _, err := image.WriteFile(busyboxTar, image.Options{}); err != nil {
		return nil, err
	}
	for _, archive := range []string{pauseTar, busyboxTar} {
		if err := d.ImportImageIn(sctx, daemon.CRINamespace, archive); err != nil {
			return nil, err
		}
	}
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	b.onCleanup(conn.Close)
	e.rt = runtimeapi.NewRuntimeServiceClient(conn)
	return e, e.waitReady(sctx)
}

// buildPause builds integration/testdata/pause, static, into dir.
func buildPause(ctx context.Context, dir string) (string, error) {
	repo, err := daemon.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pause")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go" // sudo's PATH may not have it
	}
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./integration/testdata/pause")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the pause image's binary: %w\n%s", err, out)
	}
	return bin, nil
}

// waitReady waits until CRI reports its runtime and network ready.
func (e *criBench) waitReady(ctx context.Context) error {
	for {
		why := ""
		st, err := e.rt.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			why = err.Error()
		} else {
			for _, c := range st.GetStatus().GetConditions() {
				if (c.Type == runtimeapi.RuntimeReady || c.Type == runtimeapi.NetworkReady) && !c.Status {
					why += fmt.Sprintf("%s: %s %s; ", c.Type, c.Reason, c.Message)
				}
			}
		}
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRI not ready: %s", why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runPods runs n host-network pods of k `sleep` containers each with the
// runtime handler, the pods concurrently, and returns once all run. The
// pods are removed by removePods, which a cleanup also runs.
func (e *criBench) runPods(ctx context.Context, b *bench, handler string, n, k int) ([]*criPod, error) {
	pods := make([]*criPod, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pods[i], errs[i] = e.runPod(ctx, handler, nextID("cri-"+handler), k)
		})
	}
	wg.Wait()
	var ran []*criPod
	for _, p := range pods {
		if p != nil {
			ran = append(ran, p)
		}
	}
	b.onCleanup(func() error { e.removePods(ran); return nil })
	for _, err := range errs {
		if err != nil {
			return ran, err
		}
	}
	return ran, nil
}

// runPod runs one pod as the kubelet would: the sandbox, then k containers
// created and started one after the other.
func (e *criBench) runPod(ctx context.Context, handler, name string, k int) (*criPod, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	logDir := filepath.Join(e.logs, name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: name + "-uid", Namespace: "hostnet-bench"},
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    e.cgroup + "/pod-" + name,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts},
		},
	}
	resp, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox (%s): %w", handler, err)
	}
	p := &criPod{id: resp.PodSandboxId}
	for j := range k {
		cname := fmt.Sprintf("c%d", j)
		c, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId: p.id,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: cname},
				Image:    &runtimeapi.ImageSpec{Image: image.DefaultName},
				Command:  []string{"sleep", "3600"},
				LogPath:  cname + ".log",
				Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: nsOpts,
				}},
			},
			SandboxConfig: cfg,
		})
		if err != nil {
			return p, fmt.Errorf("CreateContainer (%s): %w", handler, err)
		}
		p.containers = append(p.containers, c.ContainerId)
		if _, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			return p, fmt.Errorf("StartContainer (%s): %w", handler, err)
		}
	}
	return p, nil
}

// removePods stops and removes the pods, which kills and removes their
// containers, 4 pods at a time.
func (e *criBench) removePods(pods []*criPod) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, p := range pods {
		if p == nil || p.id == "" {
			continue
		}
		// The goroutine gets the id, not p: p.id is cleared below, so that
		// a second removePods (the cleanup's) skips the pod.
		id := p.id
		p.id = ""
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				fmt.Fprintf(os.Stderr, "hostnet-bench: stop pod %s: %v\n", id, err)
			}
			if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				fmt.Fprintf(os.Stderr, "hostnet-bench: remove pod %s: %v\n", id, err)
			}
		})
	}
	wg.Wait()
}

// podShims returns the pids of the shims serving the pods, each once,
// and how many distinct shims each pod has. A shim's -id is the group it
// serves (hostnet) or the first container it served (runc's): the
// sandbox's when grouping works, a container's otherwise.
func podShims(shims map[string]int, pods []*criPod) (pids []int, perPod []int, err error) {
	seen := map[int]bool{}
	for _, p := range pods {
		mine := map[int]bool{}
		for _, id := range append([]string{p.id}, p.containers...) {
			if pid, ok := shims[id]; ok {
				mine[pid] = true
			}
		}
		if len(mine) == 0 {
			return nil, nil, fmt.Errorf("no shim serves pod %s", p.id)
		}
		for pid := range mine {
			if !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
		perPod = append(perPod, len(mine))
	}
	return pids, perPod, nil
}

// criReading is memReading for a handler's pods.
type criReading struct {
	memReading
	pods   []*criPod
	perPod []int
}

// criMemory: shim memory with criPods pods of criContainers containers
// each, hostnet's handler and runc's side by side.
func (b *bench) criMemory(ctx context.Context) []*Table {
	k := b.o.criContainers
	t := &Table{ID: "cri-memory", Title: fmt.Sprintf("Shim memory under CRI: %d pods × %d containers (`sleep`) per handler", b.o.criPods, k),
		Note: fmt.Sprintf("pods run through containerd's CRI plugin like the kubelet's (RunPodSandbox, then CreateContainer + StartContainer of each container), "+
			"host network, the pods of each handler concurrently, both handlers' pods at once. Shims found by their command line; a pod's shims are those whose "+
			"-id is its sandbox's or one of its containers'. PSS per container = the pods' shims' PSS over the %d containers (the sandboxes not counted); "+
			"1 s and settled as in the shim memory table.", b.o.criPods*k),
		Anchor: criRowRunc, RatioOf: "s_pss", RatioHead: "settled PSS",
		Cols: []Col{{"shims", "shims", ""}, {"perpod", "shims/pod", fractional}, {"perpodmax", "most shims in a pod", ""}, {"pss", "PSS/container, 1 s", "MiB"}, {"s_pss", "PSS/container, settled", "MiB"},
			{"s_shimpss", "PSS/shim, settled", "MiB"}, {"s_pdirty", "Private_Dirty/shim", "MiB"}, {"s_threads", "threads/shim", fractional}}}
	bd := &Table{ID: "cri-memory-breakdown", Title: "Shim memory under CRI per shim (one pod), settled, in parts",
		Note: "as the shim memory breakdown, for the CRI shims above.", Anchor: criRowRunc, RatioOf: "s_pss", RatioHead: "settled PSS", Cols: memBreakdownCols()}
	tables := []*Table{t, bd}
	e, err := b.startCRI(ctx)
	if err != nil {
		for _, name := range []string{criRowHostnet, criRowRunc} {
			t.Rows = append(t.Rows, Row{Name: name, Err: err.Error()})
		}
		return tables
	}
	read := func(r *criReading) (procMemory, error) {
		shims, err := e.d.ShimPids()
		if err != nil {
			return procMemory{}, err
		}
		pids, perPod, err := podShims(shims, r.pods)
		if err != nil {
			return procMemory{}, err
		}
		r.shims, r.perPod = len(pids), perPod
		return sumProcMemory(pids)
	}
	var rs []*criReading
	for _, h := range []struct{ row, handler string }{{criRowHostnet, daemon.CRIHandler}, {criRowRunc, daemon.CRIRuncHandler}} {
		r := &criReading{memReading: memReading{name: h.row}}
		r.pods, r.err = e.runPods(ctx, b, h.handler, b.o.criPods, k)
		r.ranAt = time.Now()
		if r.err == nil {
			time.Sleep(time.Second)
			r.early, r.err = read(r)
		}
		rs = append(rs, r)
	}
	settled := b.settle(ctx, []*memReading{&rs[0].memReading, &rs[1].memReading})
	for _, r := range rs {
		if r.err == nil && !settled {
			r.err = ctx.Err()
		}
		if r.err == nil {
			r.settled, r.err = read(r)
		}
	}
	for _, r := range rs {
		e.removePods(r.pods)
		row, brow := memRows(&r.memReading)
		if row.Err == "" {
			conts := len(r.pods) * k
			row.V = map[string]float64{
				"shims": float64(r.shims), "perpod": float64(r.shims) / float64(len(r.pods)),
				"pss": r.early.Pss / 1024 / float64(conts), "s_pss": r.settled.Pss / 1024 / float64(conts),
				"s_shimpss": r.settled.Pss / 1024 / float64(r.shims), "s_pdirty": r.settled.PrivateDirty / 1024 / float64(r.shims),
				"s_threads": float64(r.settled.Threads) / float64(r.shims),
			}
			row.V["perpodmax"] = float64(slices.Max(r.perPod))
		}
		t.Rows = append(t.Rows, row)
		bd.Rows = append(bd.Rows, brow)
	}
	return tables
}
