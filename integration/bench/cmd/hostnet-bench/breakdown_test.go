package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// strace 6.1's output of `strace -f --seccomp-bpf -q -ttt -s 256 -e
// trace=execve -e signal=none -- sh -c 'nosuch; /bin/true & sleep 0.01;
// exec env true'`, shortened: execs interrupted by another process's line,
// failed PATH lookups, an exec of a process that exec'd before.
const straceSample = `4913  1796166058.358927 execve("/usr/bin/sh", ["sh", "-c", "a \"q\" b"], 0x7ffdd53b4c18 /* 35 vars */) = 0
4915  1796166058.360771 execve("/usr/bin/sleep", ["sleep", "0.01"], 0x55dad94d0c78 /* 35 vars */ <unfinished ...>
4914  1796166058.360937 execve("/bin/true", ["/bin/true"], 0x55dad94d0f38 /* 35 vars */ <unfinished ...>
4915  1796166058.361064 <... execve resumed>) = 0
4914  1796166058.362053 <... execve resumed>) = -1 ENOENT (No such file or directory)
4914  1796166058.362609 +++ exited with 1 +++
4915  1796166058.372435 +++ exited with 0 +++
4913  1796166058.372580 execve("/usr/local/go/bin/env", ["env", "true"], 0x55dad94d0c78 /* 35 vars */) = -1 ENOENT (No such file or directory)
4913  1796166058.373818 execve("/usr/bin/env", ["env", "true"], 0x55dad94d0c78 /* 35 vars */) = 0
4913  1796166058.376267 execve("/usr/bin/true", ["true"], 0x7ffc618d2c80 /* 35 vars */) = 0
4913  1796166058.377302 +++ killed by SIGKILL +++
`

func TestParseStrace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "trace")
	if err := os.WriteFile(p, []byte(straceSample), 0o644); err != nil {
		t.Fatal(err)
	}
	procs, err := parseStrace(p)
	if err != nil {
		t.Fatal(err)
	}
	// 4914's only exec failed: it is no process of the trace.
	if len(procs) != 2 {
		t.Fatalf("got %d processes, want 2 (sh, sleep): %+v", len(procs), procs)
	}
	sh, sleep := procs[0], procs[1]
	if sh.pid != 4913 || len(sh.execs) != 3 || sh.exit != 1796166058.377302 {
		t.Errorf("sh: %+v", sh)
	}
	if got := sh.execs[0].argv; !slices.Equal(got, []string{"sh", "-c", `a "q" b`}) {
		t.Errorf("sh argv %q", got)
	}
	if got := sh.execs[2]; got.path != "/usr/bin/true" || got.ts != 1796166058.376267 {
		t.Errorf("sh's last exec %+v", got)
	}
	if sleep.pid != 4915 || sleep.execs[0].ts != 1796166058.360771 || sleep.exit != 1796166058.372435 ||
		!slices.Equal(sleep.execs[0].argv, []string{"sleep", "0.01"}) {
		t.Errorf("sleep: %+v", sleep)
	}
}

// A run's phases follow one another: they add up to its wall time.
func TestPhasesOf(t *testing.T) {
	rt := &rtSpec{name: "x", binary: "/bin/rt"}
	proc := func(pid int, exec, exit float64, path string, argv ...string) *traced {
		return &traced{pid: pid, execs: []tracedExec{{ts: exec, path: path, argv: argv}}, exit: exit}
	}
	init := proc(14, 1.030, 1.052, "/proc/self/fd/5", "rt", "init")
	init.execs = append(init.execs, tracedExec{ts: 1.050, path: "/bin/true", argv: []string{"true"}})
	procs := []*traced{
		proc(10, 0.5, 0.6, "/usr/bin/containerd-shim-runc-v2", "start"), // another run's
		proc(11, 1.010, 1.015, "/usr/bin/containerd-shim-runc-v2", "-id", "a", "start"),
		proc(12, 1.014, 1.090, "/usr/bin/containerd-shim-runc-v2", "-id", "a"),
		proc(13, 1.020, 1.035, "/bin/rt", "--root", "/r", "create", "--bundle", "/b", "a"),
		init,
		proc(15, 1.040, 1.051, "/bin/rt", "start", "a"),
		proc(16, 1.060, 1.070, "/bin/rt", "delete", "a"),
	}
	p, err := phasesOf(window{rt: rt, t0: 1.000, t1: 1.100}, procs)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, k := range []string{"pre", "shimstart", "tocreate", "create", "tostart", "start", "todelete", "delete", "post"} {
		sum += p[k]
	}
	near := func(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
	if !near(sum, p["total"]) || !near(p["total"], 100) {
		t.Errorf("phases add up to %v, total %v, want 100: %v", sum, p["total"], p)
	}
	if !near(p["create"], 15) || !near(p["todelete"], 9) || !near(p["exittodelete"], 8) || !near(p["shimexit"], 20) || p["rtexecs"] != 3 || p["execs"] != 6 {
		t.Errorf("phases %v", p)
	}
	if !near(p["createtoshimexit"], 55) || !near(p["aftershim"], 10) {
		t.Errorf("phases at the shim's exit %v", p)
	}
	if _, err := phasesOf(window{rt: rt, t0: 1.000, t1: 1.100}, procs[:4]); err == nil {
		t.Error("a run without the container's process was split")
	}
	if _, err := phasesOf(window{rt: rt, t0: 1.000, t1: 1.100}, append(slices.Clone(procs[:5]), procs[6])); err == nil {
		t.Error("a run with a delete but no start was split")
	}

	// A shim that runs start and delete in its own process: the run splits
	// at create and at the shim's exit, and still adds up.
	p, err = phasesOf(window{rt: rt, t0: 1.000, t1: 1.100}, procs[:5])
	if err != nil {
		t.Fatal(err)
	}
	sum = 0
	for _, k := range []string{"pre", "shimstart", "tocreate", "create", "createtoshimexit", "aftershim"} {
		sum += p[k]
	}
	if !near(sum, p["total"]) || p["rtexecs"] != 1 {
		t.Errorf("in-process start and delete: phases add up to %v, total %v: %v", sum, p["total"], p)
	}
	if _, ok := p["start"]; ok {
		t.Errorf("in-process start has a runtime start phase: %v", p)
	}
}
