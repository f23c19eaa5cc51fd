package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// 3a: process start-up of each binary.
func (b *bench) startup(ctx context.Context) []*Table {
	bins := []struct{ name, bin, flag string }{
		{"hostnet-runc", filepath.Join(b.o.binDir, "hostnet-runc"), "--version"},
		{"runc 1.5.2", b.o.runc, "--version"},
		{"runc 1.1.5 (Debian)", b.o.debRunc, "--version"},
		{"crun 1.8.1", b.o.crun, "--version"},
		{"containerd-shim-hostnet-v1", filepath.Join(b.o.binDir, "containerd-shim-hostnet-v1"), "-v"},
		{"containerd-shim-runc-v2", lookOr("containerd-shim-runc-v2"), "-v"},
	}
	var cs []*contender
	for _, x := range bins {
		cs = append(cs, &contender{name: x.name, run: func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, x.bin, x.flag)
			return cmd.Run()
		}})
	}
	interleave(ctx, b.o.startupN, 5, cs)
	t := timeTable("startup", "Start-up: `<binary> --version` (shims: `-v`)",
		fmt.Sprintf("fork+exec+exit of each binary from Go, %d runs each, interleaved.", b.o.startupN), "runc 1.5.2", cs)
	return []*Table{t}
}

func lookOr(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// procMem reads PSS and RSS (KiB) and the thread count of pid.
func procMem(pid int) (pss, rss float64, threads int, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for l := range strings.Lines(string(data)) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "Pss:":
			pss = v
		case "Rss:":
			rss = v
		}
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for l := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return pss, rss, threads, nil
}

// fleet is a set of running containers of one runtime.
type fleet struct {
	rt      *rtSpec
	ids     []string
	elapsed time.Duration // until all were running
	err     error
}

// startFleet creates and starts k containers running `sleep 3600`
// concurrently through the Go client and returns once all run.
func (b *bench) startFleet(ctx context.Context, c *client.Client, rt *rtSpec, k int) *fleet {
	f := &fleet{rt: rt}
	for range k {
		f.ids = append(f.ids, nextID("fleet"))
	}
	b.onCleanup(func() error { return b.stopFleet(c, f) })
	var wg sync.WaitGroup
	errs := make([]error, k)
	t0 := time.Now()
	for i, id := range f.ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			ctr, err := b.newContainer(ctx, c, rt, id, "sleep", "3600")
			if err != nil {
				errs[i] = err
				return
			}
			task, err := ctr.NewTask(ctx, cio.NullIO)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = task.Start(ctx)
		})
	}
	wg.Wait()
	f.elapsed = time.Since(t0)
	for _, err := range errs {
		if err != nil {
			f.err = err
			break
		}
	}
	return f
}

// stopFleet kills and deletes the fleet's containers, 8 at a time.
func (b *bench) stopFleet(c *client.Client, f *fleet) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctx = namespacesCtx(ctx, b.d.Namespace)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, id := range f.ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctr, err := c.LoadContainer(ctx, id)
			if err != nil {
				return
			}
			if task, err := ctr.Task(ctx, nil); err == nil {
				task.Kill(ctx, syscall.SIGKILL)
				task.Delete(ctx, client.WithProcessKill)
			}
			ctr.Delete(ctx, client.WithSnapshotCleanup)
		})
	}
	wg.Wait()
	f.ids = nil
	return nil
}

// fleetMem sums PSS/RSS and threads over the fleet's shims.
func (b *bench) fleetMem(f *fleet) (pss, rss float64, threads, shims int, err error) {
	pids, err := b.d.ShimPids()
	if err != nil {
		return
	}
	seen := map[int]bool{}
	for _, id := range f.ids {
		pid, ok := pids[id]
		if !ok {
			return 0, 0, 0, 0, fmt.Errorf("no shim for %s", id)
		}
		if seen[pid] {
			continue
		}
		seen[pid] = true
		p, r, t, e := procMem(pid)
		if e != nil {
			return 0, 0, 0, 0, e
		}
		pss += p
		rss += r
		threads += t
	}
	return pss, rss, threads, len(seen), nil
}

// 3b: shim memory with 1 and with memMany running containers.
func (b *bench) shimMemory(ctx context.Context) []*Table {
	c, err := b.d.Client()
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx = namespacesCtx(ctx, b.d.Namespace)
	t := &Table{ID: "shim-memory", Title: "Shim memory per running container (`sleep`)",
		Note:   fmt.Sprintf("from /proc/<shim>/smaps_rollup and /proc/<shim>/status, per shim, with 1 and with %d containers running (one shim per container for both).", b.o.memMany),
		Anchor: "runc shim (runc 1.5.2), 1", RatioOf: "pss",
		Cols: []Col{{"pss", "PSS/shim", "MiB"}, {"rss", "RSS/shim", "MiB"}, {"threads", "threads/shim", ""}, {"shims", "shims", ""}}}
	for _, k := range []int{1, b.o.memMany} {
		for _, rt := range b.rts[:2] {
			name := fmt.Sprintf("runc shim (%s), %d", rt.name, k)
			if rt.name == "hostnet" {
				name = fmt.Sprintf("hostnet shim, %d", k)
			}
			f := b.startFleet(ctx, c, rt, k)
			row := Row{Name: name}
			if f.err != nil {
				row.Err = f.err.Error()
			} else {
				time.Sleep(time.Second) // let the shims settle
				pss, rss, th, n, err := b.fleetMem(f)
				if err != nil {
					row.Err = err.Error()
				} else {
					row.V = map[string]float64{"pss": pss / 1024 / float64(n), "rss": rss / 1024 / float64(n), "threads": float64(th) / float64(n), "shims": float64(n)}
				}
			}
			b.stopFleet(c, f)
			t.Rows = append(t.Rows, row)
		}
	}
	return []*Table{t}
}

// 5: scale: k containers started concurrently.
func (b *bench) scaleTest(ctx context.Context) []*Table {
	c, err := b.d.Client()
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx = namespacesCtx(ctx, b.d.Namespace)
	t := &Table{ID: "scale", Title: fmt.Sprintf("Scale: %d containers created and started concurrently", b.o.scale),
		Note:   "Go client, one goroutine per container (new snapshot, NewTask, Start); time until all are running; memory = sum of shim PSS + containerd RSS growth, once all run.",
		Anchor: "runc 1.5.2", RatioOf: "time",
		Cols: []Col{{"time", "all running after", "s"}, {"per", "per container", "ms"}, {"mem", "total memory", "MiB"}, {"shimpss", "shims PSS", "MiB"}, {"ctrd", "containerd RSS +", "MiB"}}}
	// hostnet, runc 1.5.2 and hostnet's shim driving runc 1.5.2.
	for _, rt := range b.rts[:3] {
		_, before, _, _ := procMem(b.d.Pid())
		f := b.startFleet(ctx, c, rt, b.o.scale)
		row := Row{Name: rt.name}
		if f.err != nil {
			row.Err = f.err.Error()
		} else {
			time.Sleep(time.Second)
			pss, _, _, _, err := b.fleetMem(f)
			_, after, _, _ := procMem(b.d.Pid())
			if err != nil {
				row.Err = err.Error()
			} else {
				delta := (after - before) / 1024
				row.V = map[string]float64{"time": f.elapsed.Seconds(), "per": f.elapsed.Seconds() * 1000 / float64(b.o.scale),
					"mem": pss/1024 + delta, "shimpss": pss / 1024, "ctrd": delta}
			}
		}
		b.stopFleet(c, f)
		t.Rows = append(t.Rows, row)
	}
	// A second table so the memory has its own ratio.
	m := &Table{ID: "scale-memory", Title: fmt.Sprintf("Scale: total memory with %d containers running", b.o.scale),
		Note: "sum of shim PSS + containerd RSS growth.", Anchor: "runc 1.5.2", RatioOf: "mem",
		Cols: []Col{{"mem", "total memory", "MiB"}}}
	for _, r := range t.Rows {
		m.Rows = append(m.Rows, Row{Name: r.Name, Err: r.Err, V: map[string]float64{"mem": r.V["mem"]}})
	}
	return []*Table{t, m}
}
