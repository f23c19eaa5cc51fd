package main

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
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

// fleetShims returns the pids of the shims that serve the fleet's
// containers, each once.
func (b *bench) fleetShims(f *fleet) ([]int, error) {
	pids, err := b.d.ShimPids()
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []int
	for _, id := range f.ids {
		pid, ok := pids[id]
		if !ok {
			return nil, fmt.Errorf("no shim for %s", id)
		}
		if !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	return out, nil
}

// fleetMem sums the memory of the fleet's shims.
func (b *bench) fleetMem(f *fleet) (procMemory, int, error) {
	pids, err := b.fleetShims(f)
	if err != nil {
		return procMemory{}, 0, err
	}
	m, err := sumProcMemory(pids)
	return m, len(pids), err
}

// shimFreeInterval is how often pkg/shim's server (containerd's runc shim
// and hostnet's alike) calls debug.FreeOSMemory: until then a shim's RSS
// still holds what its start-up allocated and the GC has freed.
const shimFreeInterval = 30 * time.Second

// memReading is one contender's shims read twice: 1 s after all its
// containers run, and settled, once every shim has passed pkg/shim's first
// FreeOSMemory.
type memReading struct {
	name           string
	early, settled procMemory
	// shims is how many shims serve the contender's containers.
	shims int
	// ranAt is when all its containers ran: every shim started before.
	ranAt time.Time
	err   error
}

// settle waits until every shim of rs (all started before their ranAt)
// has passed pkg/shim's first FreeOSMemory. It reports false if ctx ended
// first.
func (b *bench) settle(ctx context.Context, rs []*memReading) bool {
	var last time.Time
	for _, r := range rs {
		if r.ranAt.After(last) {
			last = r.ranAt
		}
	}
	wait := time.Until(last.Add(b.o.settle))
	b.logf("waiting %.0f s for the shims to settle (pkg/shim frees memory every %s)", wait.Seconds(), shimFreeInterval)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wait):
		return true
	}
}

// memBreakdownCols are the columns of a settled reading's parts.
func memBreakdownCols() []Col {
	return []Col{
		{"s_pss", "PSS", "MiB"}, {"s_pdirty", "Private_Dirty", "MiB"}, {"s_pclean", "Private_Clean", "MiB"},
		{"s_sharedpss", "PSS of shared pages", "MiB"}, {"s_shared", "Shared (RSS)", "MiB"},
		{"s_pssanon", "Pss_Anon", "MiB"}, {"s_pssfile", "Pss_File", "MiB"}, {"s_threads", "threads", fractional},
	}
}

// 3b: shim memory with 1 and with memMany running containers, hostnet's
// and runc 1.5.2's fleets running side by side, each read 1 s after its
// containers run and again settled.
func (b *bench) shimMemory(ctx context.Context) []*Table {
	c, err := b.d.Client()
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx = namespacesCtx(ctx, b.d.Namespace)
	t := &Table{ID: "shim-memory", Title: "Shim memory per running container (`sleep`)",
		Note: fmt.Sprintf("from /proc/<shim>/smaps_rollup and /proc/<shim>/status, per shim, with 1 and with %d containers running (one shim per container for each); "+
			"1 s = read 1 s after all run, settled = read %.0f s after, once every shim has passed pkg/shim's first FreeOSMemory (every %s, in both shims). "+
			"All contenders' containers run at once.", b.o.memMany, b.o.settle.Seconds(), shimFreeInterval),
		Anchor: "runc shim (runc 1.5.2), 1", RatioOf: "pss",
		Cols: []Col{{"pss", "PSS/shim, 1 s", "MiB"}, {"s_pss", "PSS/shim, settled", "MiB"}, {"rss", "RSS/shim, 1 s", "MiB"}, {"s_rss", "RSS/shim, settled", "MiB"},
			{"threads", "threads/shim, 1 s", fractional}, {"shims", "shims", ""}}}
	bd := &Table{ID: "shim-memory-breakdown", Title: "Shim memory per shim, settled, in parts",
		Note: "smaps_rollup of each shim after the settled reading above, per shim: PSS = Private_Dirty + Private_Clean + the PSS of shared pages " +
			"(file pages of the shim binary that other shims of the same binary map too) = Pss_Anon + Pss_File; Shared (RSS) is the whole size of those shared pages.",
		Anchor: fmt.Sprintf("runc shim (runc 1.5.2), %d", b.o.memMany), RatioOf: "s_pss", RatioHead: "settled PSS", Cols: memBreakdownCols()}
	for _, k := range []int{1, b.o.memMany} {
		var rs []*memReading
		fleets := map[*memReading]*fleet{}
		for _, rt := range b.memoryRuntimes() {
			r := &memReading{name: fmt.Sprintf("runc shim (%s), %d", rt.name, k)}
			if rt.runtime != daemon.RuncRuntime {
				r.name = fmt.Sprintf("%s shim, %d", rt.name, k)
			}
			f := b.startFleet(ctx, c, rt, k)
			fleets[r] = f
			r.ranAt = time.Now()
			if r.err = f.err; r.err == nil {
				time.Sleep(time.Second)
				r.early, r.shims, r.err = b.fleetMem(f)
			}
			rs = append(rs, r)
		}
		settled := b.settle(ctx, rs)
		for _, r := range rs {
			if r.err == nil && !settled {
				r.err = ctx.Err()
			}
			if r.err == nil {
				r.settled, _, r.err = b.fleetMem(fleets[r])
			}
		}
		for _, r := range rs {
			b.stopFleet(c, fleets[r])
			row, brow := memRows(r)
			t.Rows = append(t.Rows, row)
			bd.Rows = append(bd.Rows, brow)
		}
	}
	return []*Table{t, bd}
}

// memoryRuntimes are the memory section's contenders: hostnet, runc 1.5.2
// and -alt-shim's build.
func (b *bench) memoryRuntimes() []*rtSpec {
	rts := b.rts[:2:2]
	for _, rt := range b.rts[2:] {
		if filepath.IsAbs(rt.runtime) {
			rts = append(rts, rt)
		}
	}
	return rts
}

// memRows are r's rows of the memory table and of its breakdown, per shim.
func memRows(r *memReading) (Row, Row) {
	row, brow := Row{Name: r.name}, Row{Name: r.name}
	if r.err == nil && r.shims == 0 {
		r.err = fmt.Errorf("no shim found")
	}
	if r.err != nil {
		row.Err, brow.Err = r.err.Error(), r.err.Error()
		return row, brow
	}
	row.V = r.early.perMiB(r.shims, "")
	maps.Copy(row.V, r.settled.perMiB(r.shims, "s_"))
	row.V["shims"] = float64(r.shims)
	brow.V = r.settled.perMiB(r.shims, "s_")
	return row, brow
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
		before, _ := readProcMemory(b.d.Pid())
		f := b.startFleet(ctx, c, rt, b.o.scale)
		row := Row{Name: rt.name}
		if f.err != nil {
			row.Err = f.err.Error()
		} else {
			time.Sleep(time.Second)
			shims, _, err := b.fleetMem(f)
			pss := shims.Pss
			after, _ := readProcMemory(b.d.Pid())
			if err != nil {
				row.Err = err.Error()
			} else {
				delta := (after.Rss - before.Rss) / 1024
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
