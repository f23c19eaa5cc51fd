package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// The breakdown of one `ctr run --rm` into the phases between the execs
// and exits of the processes it involves, from the kernel's order of
// events as strace saw them on a second private containerd started under
// `strace -f --seccomp-bpf -e trace=execve` (the tracees stop only at
// execve, fork and exit). Consecutive phases share their boundaries, so
// they add up to the run's wall time.
var phaseCols = []Col{
	{"pre", "ctr+containerd before the shim", "ms"},
	{"shimstart", "shim start", "ms"},
	{"tocreate", "shim up → runtime create", "ms"},
	{"create", "runtime create", "ms"},
	{"tostart", "create → start", "ms"},
	{"start", "runtime start", "ms"},
	{"todelete", "start → delete", "ms"},
	{"delete", "runtime delete", "ms"},
	{"post", "delete → ctr exits", "ms"},
	// For every runtime, also where start and delete are not exec'd
	// (hostnet-runc's run in hostnet's shim): the same span as tostart
	// through shimexit, and what follows.
	{"createtoshimexit", "create → shim exits", "ms"},
	{"aftershim", "shim exits → ctr exits", "ms"},
	{"total", "total", "ms"},
	{"exittodelete", "of which exit → delete", "ms"},
	{"shimexit", "shim exits after delete", "ms"},
	{"execs", "execs", ""},
	{"rtexecs", "runtime execs", ""},
}

// traced is one process of the trace, from its first exec to its exit.
type traced struct {
	pid   int
	execs []tracedExec
	exit  float64 // unix seconds; 0 while it runs
}

type tracedExec struct {
	ts   float64
	path string
	argv []string
}

// window is one timed `ctr run` of a contender.
type window struct {
	rt     *rtSpec
	t0, t1 float64
}

func (b *bench) breakdown(ctx context.Context) []*Table {
	t := &Table{ID: "breakdown", Title: "Where a `ctr run --rm busybox id true` spends its time",
		Note: "Phase means in ms, from the exec and exit times of ctr's containerd's processes under `strace -f --seccomp-bpf -ttt -e trace=execve` (a second private containerd, tracees stop only at execve, fork and exit; strace also sets no_new_privs): " +
			"ctr+containerd before the shim = ctr started → shim `start` exec'd; shim start = that process's life; shim up → runtime create = containerd connecting, the shim's Create (rootfs, spec, network) until the runtime's `create` is exec'd; " +
			"create → start = the shim's reply, containerd, ctr and the shim until `start` is exec'd; start → delete = start's exit until `delete` is exec'd, of which exit → delete from the later of start's and the container's exit (reap, exit event, ctr's wait, Delete); " +
			"delete → ctr exits = the shim's exit, the `shim delete` containerd runs after every task delete, containerd removing the task, snapshot and container, ctr exiting; create → shim exits and shim exits → ctr exits split the same run at the shim's exit instead, for every runtime, also where the shim runs start and delete in its own process (hostnet-runc in hostnet's shim: those phases are empty). execs = processes exec'd per run by containerd's tree (ctr not counted), runtime execs = those of the runtime binary. " +
			"Interleaved like the tables above, the total is slower than untraced by strace's stops.",
		Anchor: "runc 1.5.2", RatioOf: "total", Cols: phaseCols}
	if _, err := exec.LookPath("strace"); err != nil {
		t.Note = "skipped: no strace (apt-get install strace)"
		return []*Table{t}
	}
	// In the output directory, beside the tables derived from it.
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		t.Note = err.Error()
		return []*Table{t}
	}
	tracePath, err := filepath.Abs(filepath.Join(b.o.out, "breakdown.strace"))
	if err != nil {
		t.Note = err.Error()
		return []*Table{t}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	d, err := daemon.Start(sctx, daemon.Config{
		BinDir:       b.o.binDir,
		Namespace:    b.d.Namespace + "-traced",
		RuntimeRoots: []string{daemon.DefaultRuntimeRoot(daemon.HostnetRuntime), daemon.DefaultRuntimeRoot(daemon.RuncRuntime)},
		Strace:       tracePath,
	})
	if err != nil {
		t.Note = "traced containerd: " + err.Error()
		return []*Table{t}
	}
	b.onCleanup(d.Stop)
	if err := d.ImportImage(sctx, filepath.Join(b.d.Dir, "busybox.tar")); err != nil {
		d.Stop()
		t.Note = "traced containerd: " + err.Error()
		return []*Table{t}
	}
	var windows []window
	var cs []*contender
	for _, rt := range b.rts {
		cs = append(cs, &contender{name: rt.name, run: func(ctx context.Context) error {
			args := append(b.ctrRunArgs(rt), image.DefaultName, nextID("bd"), "true")
			// ctr's FIFOs in the traced daemon's directory.
			for i, a := range args {
				if a == b.d.FIFODir {
					args[i] = d.FIFODir
				}
			}
			t0 := unixNow()
			_, err := d.CtrOutput(ctx, args...)
			windows = append(windows, window{rt: rt, t0: t0, t1: unixNow()})
			return err
		}})
	}
	interleave(ctx, b.o.n, 2, cs)
	// strace's buffered output is complete once it has exited.
	if err := d.Stop(); err != nil {
		b.logf("traced containerd: stop: %v", err)
	}
	procs, err := parseStrace(tracePath)
	if err != nil {
		t.Note = "strace output: " + err.Error()
		return []*Table{t}
	}
	for _, c := range cs {
		var rows []map[string]float64
		var rt *rtSpec
		for _, w := range windows {
			if w.rt.name != c.name {
				continue
			}
			rt = w.rt
			if p, err := phasesOf(w, procs); err == nil {
				rows = append(rows, p)
			} else if c.err == nil {
				c.err = fmt.Errorf("run at %.3f: %w", w.t0, err)
			}
		}
		row := Row{Name: c.name}
		// The warm-up runs are the first two of each contender.
		if len(rows) > 2 {
			rows = rows[2:]
		}
		switch {
		case c.err != nil:
			row.Err = c.err.Error()
		case rt == nil || len(rows) == 0:
			row.Err = "no runs"
		default:
			row.V = map[string]float64{}
			for _, col := range phaseCols {
				if !slices.ContainsFunc(rows, func(p map[string]float64) bool { _, ok := p[col.Key]; return ok }) {
					continue // a phase this runtime does not have
				}
				for _, p := range rows {
					row.V[col.Key] += p[col.Key] / float64(len(rows))
				}
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return []*Table{t}
}

func unixNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// phasesOf splits window w by the processes exec'd in it.
func phasesOf(w window, procs []*traced) (map[string]float64, error) {
	var shimStart, shim, create, start, del, ctrInit *traced
	execs, rtExecs := 0, 0
	for _, p := range procs {
		first := p.execs[0]
		if first.ts < w.t0 || first.ts > w.t1 {
			continue
		}
		execs++
		base := filepath.Base(first.path)
		switch {
		case strings.HasPrefix(base, "containerd-shim-"):
			switch {
			case slices.Contains(first.argv, "-info"):
				// containerd asking the shim for the runtime's features.
			case slices.Contains(first.argv, "start"):
				shimStart = p
			case !slices.Contains(first.argv, "delete") && shim == nil:
				shim = p
			}
		case first.path == w.rt.binary:
			rtExecs++
			switch {
			case slices.Contains(first.argv, "create") && create == nil:
				create = p
			case slices.Contains(first.argv, "start") && start == nil:
				start = p
			case slices.Contains(first.argv, "delete") && del == nil:
				del = p
			}
		}
		for _, e := range p.execs {
			if filepath.Base(e.path) == "true" {
				ctrInit = p
			}
		}
	}
	// Start and delete are the runtime's commands only where the shim
	// execs them: hostnet's shim runs hostnet-runc's in its own process.
	// Without them, the phases between create and the shim's exit are one.
	need := map[string]*traced{"shim start": shimStart, "shim": shim, "runtime create": create, "container": ctrInit}
	if start != nil || del != nil {
		need["runtime start"], need["runtime delete"] = start, del
	}
	for name, p := range need {
		if p == nil {
			return nil, fmt.Errorf("no %s process", name)
		}
		if p.exit == 0 {
			return nil, fmt.Errorf("%s (pid %d) did not exit", name, p.pid)
		}
	}
	ms := func(a, b float64) float64 { return (b - a) * 1000 }
	phases := map[string]float64{
		"pre":              ms(w.t0, shimStart.execs[0].ts),
		"shimstart":        ms(shimStart.execs[0].ts, shimStart.exit),
		"tocreate":         ms(shimStart.exit, create.execs[0].ts),
		"create":           ms(create.execs[0].ts, create.exit),
		"createtoshimexit": ms(create.exit, shim.exit),
		"aftershim":        ms(shim.exit, w.t1),
		"total":            ms(w.t0, w.t1),
		"execs":            float64(execs),
		"rtexecs":          float64(rtExecs),
	}
	if start != nil {
		phases["tostart"] = ms(create.exit, start.execs[0].ts)
		phases["start"] = ms(start.execs[0].ts, start.exit)
		phases["todelete"] = ms(start.exit, del.execs[0].ts)
		phases["exittodelete"] = ms(max(start.exit, ctrInit.exit), del.execs[0].ts)
		phases["delete"] = ms(del.execs[0].ts, del.exit)
		phases["post"] = ms(del.exit, w.t1)
		phases["shimexit"] = ms(del.exit, shim.exit)
	}
	return phases, nil
}

// parseStrace reads `strace -f -ttt -e trace=execve` output: successful
// execs and process exits, by pid. A pid that execs again (an init
// exec'ing the container's program) stays one process.
func parseStrace(path string) ([]*traced, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var all []*traced
	live := map[int]*traced{}
	pending := map[int]tracedExec{} // execve entered, result not yet seen
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		pidStr, rest, ok1 := strings.Cut(sc.Text(), " ")
		tsStr, ev, ok2 := strings.Cut(strings.TrimLeft(rest, " "), " ")
		pid, err1 := strconv.Atoi(pidStr)
		ts, err2 := strconv.ParseFloat(tsStr, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			continue
		}
		var e tracedExec
		var result string
		switch {
		case strings.HasPrefix(ev, "execve("):
			e = parseExecve(ev)
			e.ts = ts
			if strings.HasSuffix(ev, "<unfinished ...>") {
				pending[pid] = e
				continue
			}
			_, result, _ = strings.Cut(ev, ") = ")
		case strings.HasPrefix(ev, "<... execve resumed>"):
			var ok bool
			if e, ok = pending[pid]; !ok {
				continue
			}
			delete(pending, pid)
			_, result, _ = strings.Cut(ev, ") = ")
		case strings.HasPrefix(ev, "+++ exited with ") || strings.HasPrefix(ev, "+++ killed by "):
			if p := live[pid]; p != nil {
				p.exit = ts
				delete(live, pid)
			}
			continue
		default:
			continue
		}
		if !strings.HasPrefix(result, "0") {
			continue // a failed exec (a PATH lookup)
		}
		if p := live[pid]; p != nil {
			p.execs = append(p.execs, e)
			continue
		}
		p := &traced{pid: pid, execs: []tracedExec{e}}
		live[pid] = p
		all = append(all, p)
	}
	return all, sc.Err()
}

// parseExecve reads the path and argv of an execve line:
// execve("/bin/x", ["x", "a"], 0x... /* 3 vars */) = 0.
func parseExecve(ev string) tracedExec {
	var e tracedExec
	s := strings.TrimPrefix(ev, "execve(")
	path, rest, ok := cutQuoted(s)
	if !ok {
		return e
	}
	e.path = path
	rest = strings.TrimPrefix(rest, ", [")
	for {
		arg, r, ok := cutQuoted(rest)
		if !ok {
			break
		}
		e.argv = append(e.argv, arg)
		rest = strings.TrimPrefix(strings.TrimPrefix(r, "..."), ", ")
	}
	return e
}

// cutQuoted unquotes the C string s starts with and returns the rest.
func cutQuoted(s string) (string, string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, false
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			v, err := strconv.Unquote(s[:i+1])
			if err != nil {
				v = s[1:i]
			}
			return v, s[i+1:], true
		}
	}
	return "", s, false
}
