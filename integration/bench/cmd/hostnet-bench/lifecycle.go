package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// contender is one side of a timed comparison.
type contender struct {
	name    string
	run     func(ctx context.Context) error
	samples []float64 // ms
	err     error     // first failure; the contender is dropped after it
}

var seq atomic.Int64

func nextID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// interleave runs every contender once per round, n rounds after warmup
// untimed ones, rotating which goes first. A contender that fails is
// reported as failing and skipped from then on.
func interleave(ctx context.Context, n, warmup int, cs []*contender) {
	for i := range warmup + n {
		for k := range cs {
			c := cs[(i+k)%len(cs)]
			if c.err != nil || ctx.Err() != nil {
				continue
			}
			t0 := time.Now()
			err := c.run(ctx)
			d := time.Since(t0)
			if err != nil {
				c.err = err
				continue
			}
			if i >= warmup {
				c.samples = append(c.samples, float64(d)/float64(time.Millisecond))
			}
		}
	}
}

func timeTable(id, title, note, anchor string, cs []*contender) *Table {
	t := &Table{ID: id, Title: title, Note: note, Anchor: anchor, RatioOf: "mean", Cols: timeCols}
	for _, c := range cs {
		t.Rows = append(t.Rows, timeRow(c.name, c.samples, c.err))
	}
	return t
}

// ctrRunArgs are the `ctr run` flags for rt in host network mode.
func (b *bench) ctrRunArgs(rt *rtSpec) []string {
	args := []string{"run", "--rm", "--fifo-dir", b.d.FIFODir, "--runtime", rt.runtime}
	switch {
	case rt.runtime == daemon.RuncRuntime:
		args = append(args, "--runc-binary", rt.binary, "--net-host")
	case rt.configPath != "":
		// ctr passes --runc-binary to the runc shim only.
		args = append(args, "--runtime-config-path", rt.configPath)
	}
	return args
}

// 1a: ctr run --rm <image> id true.
func (b *bench) ctrLifecycle(ctx context.Context) []*Table {
	var cs []*contender
	for _, rt := range b.rts {
		cs = append(cs, &contender{name: rt.name, run: func(ctx context.Context) error {
			args := append(b.ctrRunArgs(rt), image.DefaultName, nextID("ctr"), "true")
			_, err := b.d.CtrOutput(ctx, args...)
			return err
		}})
	}
	interleave(ctx, b.o.n, 2, cs)
	return []*Table{timeTable("ctr-run", "Container lifecycle: `ctr run --rm busybox id true`",
		"create + start + wait + delete through containerd 2.4 and `ctr` (a new ctr process per run).", "runc 1.5.2", cs)}
}

// runtimeOpts are the containerd runtime options for rt.
func runtimeOpts(rt *rtSpec) any {
	if rt.runtime == daemon.RuncRuntime || rt.configPath != "" {
		return &options.Options{BinaryName: rt.binary}
	}
	return nil
}

// newContainer creates a container of the busybox image running args
// through the Go client; runc-shim containers get the host network.
func (b *bench) newContainer(ctx context.Context, c *client.Client, rt *rtSpec, id string, args ...string) (client.Container, error) {
	img, err := c.GetImage(ctx, image.DefaultName)
	if err != nil {
		return nil, err
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}
	if rt.runtime == daemon.RuncRuntime {
		specOpts = append(specOpts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	}
	return c.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(rt.runtime, runtimeOpts(rt)),
		client.WithNewSpec(specOpts...),
	)
}

// 1b: the same lifecycle through the containerd Go client.
func (b *bench) clientLifecycle(ctx context.Context) []*Table {
	c, err := b.d.Client()
	if err != nil {
		return []*Table{{ID: "client", Title: "client lifecycle", Note: err.Error()}}
	}
	defer c.Close()
	var cs []*contender
	for _, rt := range b.rts {
		cs = append(cs, &contender{name: rt.name, run: func(ctx context.Context) error {
			return b.clientRun(ctx, c, rt)
		}})
	}
	interleave(ctx, b.o.n, 2, cs)
	return []*Table{timeTable("client-run", "Container lifecycle through the containerd Go client",
		"NewContainer (new snapshot) + NewTask + Start + Wait + Delete task + Delete container (with snapshot), `true`, one long-lived client.", "runc 1.5.2", cs)}
}

func (b *bench) clientRun(ctx context.Context, c *client.Client, rt *rtSpec) (retErr error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id := nextID("cli")
	ctr, err := b.newContainer(ctx, c, rt, id, "true")
	if err != nil {
		return err
	}
	defer func() {
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && retErr == nil {
			retErr = err
		}
	}()
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		task.Delete(ctx, client.WithProcessKill)
		return err
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, client.WithProcessKill)
		return err
	}
	st := <-statusC
	if _, err := task.Delete(ctx); err != nil {
		return err
	}
	if code, _, err := st.Result(); err != nil || code != 0 {
		return fmt.Errorf("exit %d: %w", code, err)
	}
	return nil
}

// 2: the OCI runtime alone on a prepared bundle.
func (b *bench) runtimeAlone(ctx context.Context) []*Table {
	bundle, err := b.prepareBundle()
	if err != nil {
		return []*Table{{ID: "runtime", Title: "runtime alone", Note: "bundle: " + err.Error()}}
	}
	// Our bench process adopts the containers' init processes, so that it
	// can wait for them like a shim does.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return []*Table{{ID: "runtime", Title: "runtime alone", Note: "subreaper: " + err.Error()}}
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	// crun runs in a mount namespace without the v2 hierarchy on a hybrid
	// host (see legacyview.go); the others run as they are.
	direct := func(f func() error) error { return f() }
	crunDo, crunNote := direct, ""
	if hybridCgroups() {
		v, err := newLegacyView()
		if err != nil {
			crunDo = func(func() error) error { return err }
		} else {
			defer v.Close()
			crunDo, crunNote = v.Do, " crun runs in a mount namespace without /sys/fs/cgroup/unified (it refuses hybrid hosts), entered once, not per command."
		}
	}
	bins := []struct {
		name, bin string
		global    []string
		do        func(func() error) error
	}{
		{"hostnet-runc", filepath.Join(b.o.binDir, "hostnet-runc"), nil, direct},
		{"runc 1.5.2", b.o.runc, nil, direct},
		{"runc 1.1.5 (Debian)", b.o.debRunc, nil, direct},
		{"crun 1.8.1", b.o.crun, []string{"--cgroup-manager=cgroupfs"}, crunDo},
	}
	if name, path, ok := strings.Cut(b.o.altRuntime, "="); ok {
		bins = append(bins, struct {
			name, bin string
			global    []string
			do        func(func() error) error
		}{name, path, nil, direct})
	}
	var cs []*contender
	steps := map[*contender][]cycleSteps{}
	for _, x := range bins {
		root := filepath.Join(b.work, "roots", strings.Fields(x.name)[0]+filepath.Base(x.bin))
		if err := os.MkdirAll(root, 0o700); err != nil {
			cs = append(cs, &contender{name: x.name, err: err})
			continue
		}
		c := &contender{name: x.name}
		c.run = func(ctx context.Context) error {
			return x.do(func() error {
				st, err := b.bundleCycle(ctx, x.bin, x.global, root, bundle)
				if err == nil {
					steps[c] = append(steps[c], st)
				}
				return err
			})
		}
		cs = append(cs, c)
		// Before the view closes: crun deletes in the view it created in.
		defer x.do(func() error { return b.deleteAllIn(x.bin, x.global, root) })
	}
	interleave(ctx, b.o.n, 2, cs)
	t := timeTable("runtime", "OCI runtime alone: create + start + wait + delete of a prepared bundle",
		"busybox rootfs, `true`, host network, ociVersion 1.0.2, cgroupfs; each runtime invoked as the runc shim would (`create --bundle`, `start`, reap, `delete`); create, start and delete are the means of each command's own wall time."+crunNote, "runc 1.5.2", cs)
	t.Cols = append(t.Cols, Col{"create", "create", "ms"}, Col{"start", "start", "ms"}, Col{"delete", "delete", "ms"})
	for i, c := range cs {
		st := steps[c]
		if len(st) > 2 { // the warm-up runs
			st = st[2:]
		}
		if t.Rows[i].V == nil || len(st) == 0 {
			continue
		}
		for _, s := range st {
			t.Rows[i].V["create"] += s.create / float64(len(st))
			t.Rows[i].V["start"] += s.start / float64(len(st))
			t.Rows[i].V["delete"] += s.delete / float64(len(st))
		}
	}
	return []*Table{t}
}

// cycleSteps are the wall times of one bundle cycle's commands, in ms.
type cycleSteps struct{ create, start, delete float64 }

// prepareBundle writes a bundle with a minimal busybox rootfs and the
// default spec of runc v1.5.2, minus the network namespace.
func (b *bench) prepareBundle() (string, error) {
	bundle := filepath.Join(b.work, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return "", err
		}
	}
	bb, err := os.ReadFile(image.DefaultBusybox)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return "", err
	}
	for _, a := range []string{"true", "sh"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			return "", err
		}
	}
	cmd := exec.Command(b.o.runc, "spec")
	cmd.Dir = bundle
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("runc spec: %w: %s", err, out)
	}
	var s specs.Spec
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return "", err
	}
	s.Version = "1.0.2"
	s.Process.Terminal = false
	s.Process.Args = []string{"/bin/true"}
	s.Root.Readonly = true
	var nss []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != specs.NetworkNamespace {
			nss = append(nss, n)
		}
	}
	s.Linux.Namespaces = nss
	// Below /<namespace>/, which the daemon's Stop removes in every hierarchy.
	s.Linux.CgroupsPath = "/" + b.d.Namespace + "/runtime-alone"
	data, err = json.MarshalIndent(&s, "", "\t")
	if err != nil {
		return "", err
	}
	return bundle, os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644)
}

// bundleCycle: create, start, reap, delete.
func (b *bench) bundleCycle(ctx context.Context, bin string, global []string, root, bundle string) (st cycleSteps, retErr error) {
	id := nextID("rt")
	pidFile := filepath.Join(b.work, id+".pid")
	defer os.Remove(pidFile)
	logFile := filepath.Join(b.work, id+".log")
	defer os.Remove(logFile)
	rt := func(args ...string) error {
		full := append(append(slices.Clone(global), "--root", root, "--log", logFile, "--log-format", "json"), args...)
		cmd := exec.CommandContext(ctx, bin, full...)
		out, err := os.CreateTemp(b.work, "out-")
		if err != nil {
			return err
		}
		defer os.Remove(out.Name())
		defer out.Close()
		// A file, not a pipe: the container inherits it and outlives create.
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			msg, _ := os.ReadFile(out.Name())
			lg, _ := os.ReadFile(logFile)
			return fmt.Errorf("%s %s: %w: %s %s", filepath.Base(bin), args[0], err, strings.TrimSpace(string(msg)), lastLine(string(lg)))
		}
		return nil
	}
	timed := func(into *float64, args ...string) error {
		t0 := time.Now()
		err := rt(args...)
		*into = float64(time.Since(t0)) / float64(time.Millisecond)
		return err
	}
	if err := timed(&st.create, "create", "--bundle", bundle, "--pid-file", pidFile, id); err != nil {
		rt("delete", "--force", id)
		return st, err
	}
	pid, err := readPidFile(pidFile)
	if err != nil {
		rt("delete", "--force", id)
		return st, err
	}
	if err := timed(&st.start, "start", id); err != nil {
		rt("delete", "--force", id)
		return st, err
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("wait %d: %w", pid, err)
		}
		break
	}
	if err := timed(&st.delete, "delete", id); err != nil {
		return st, err
	}
	if ws.ExitStatus() != 0 {
		return st, fmt.Errorf("container exited %v", ws)
	}
	return st, nil
}

// deleteAllIn force-deletes whatever containers are left in root.
func (b *bench) deleteAllIn(bin string, global []string, root string) error {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() {
			exec.Command(bin, append(slices.Clone(global), "--root", root, "delete", "--force", e.Name())...).Run()
		}
	}
	return nil
}

func readPidFile(p string) (int, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(string(data), &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %q", data)
	}
	return pid, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
