// Command hostnet-bench compares hostnet with containerd's runc shim (runc
// v1.5.2 as the anchor, Debian's runc and crun alongside) and with CNI, on a
// private containerd, in one run. `sudo make bench` builds and runs it.
//
// It prints Markdown tables, writes the same numbers to
// <out>/results.json and draws <out>/chart.svg. Every figure is a ratio
// against an anchor measured in the same run, contenders interleaved
// round-robin so the machine's noise hits all alike.
//
// Everything it creates (containers, shims, mounts, netns, veths, bridges,
// iptables chains, cgroups, files) is removed at the end, on failure and on
// SIGINT/SIGTERM; processes are stopped by pid. Network traffic only goes
// to loopback and to the containers it created.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

type benchOpts struct {
	binDir    string
	out       string
	n         int
	startupN  int
	scale     int
	memMany   int
	iperfSecs int
	iperfRuns int
	requests  int
	runc      string // runc v1.5.2, the anchor
	debRunc   string
	crun      string
	only      string
	// altRuntime is NAME=PATH: another build of an OCI runtime for the
	// runtime-alone table, interleaved with the others (a before/after).
	altRuntime string
	// altShim is NAME=DIR: another build of hostnet's shim and hostnet-runc
	// (DIR holds both) as a row of the lifecycle, client, breakdown and
	// memory tables, interleaved with the others (a before/after of the
	// shim).
	altShim string
	// settle is how long after its containers run a shim's memory is read
	// again (past pkg/shim's FreeOSMemory).
	settle time.Duration
	// criPods pods of criContainers containers each run through CRI.
	criPods, criContainers int
}

func main() {
	var o benchOpts
	repo, _ := daemon.RepoRoot()
	flag.StringVar(&o.binDir, "bin", filepath.Join(repo, "bin"), "directory with containerd-shim-hostnet-v1 and hostnet-runc")
	flag.StringVar(&o.out, "out", "bench-results", "directory for results.json, results.md and chart.svg")
	flag.IntVar(&o.n, "n", 20, "runs per contender of each timed step")
	flag.IntVar(&o.startupN, "startup-n", 200, "runs per binary of the --version start-up")
	flag.IntVar(&o.scale, "scale", 100, "containers started concurrently in the scale test")
	flag.IntVar(&o.memMany, "mem-containers", 50, "running containers for the 'many' shim memory figure")
	flag.DurationVar(&o.settle, "settle", shimFreeInterval+2*time.Second, "wait after the containers run before the settled shim memory reading (past pkg/shim's FreeOSMemory every 30s)")
	flag.IntVar(&o.criPods, "cri-pods", 10, "pods per runtime handler in the CRI memory test")
	flag.IntVar(&o.criContainers, "cri-containers", 3, "containers per pod in the CRI memory test")
	flag.IntVar(&o.iperfSecs, "iperf-seconds", 3, "length of one iperf3 test")
	flag.IntVar(&o.iperfRuns, "iperf-runs", 3, "iperf3 tests per contender")
	flag.IntVar(&o.requests, "requests", 2000, "request/response round trips per latency test")
	flag.StringVar(&o.runc, "runc", "/var/cache/hostnet/runc-v1.5.2/bin/runc", "runc v1.5.2, the anchor")
	flag.StringVar(&o.debRunc, "debian-runc", "/usr/sbin/runc", "Debian's runc")
	flag.StringVar(&o.crun, "crun", "/usr/bin/crun", "crun")
	flag.StringVar(&o.altRuntime, "alt-runtime", "", "NAME=PATH: another OCI runtime build as a row of the runtime-alone table (e.g. main's hostnet-runc, for a before/after)")
	flag.StringVar(&o.altShim, "alt-shim", "", "NAME=DIR: another build of containerd-shim-hostnet-v1 and hostnet-runc, both in DIR, as a row of the containerd and shim memory tables (e.g. main's, for a before/after)")
	flag.StringVar(&o.only, "only", "", "comma-separated sections to run (lifecycle,client,breakdown,runtime,startup,memory,cri,network,scale); all if empty")
	flag.Parse()
	// The breakdown finds the runtimes' execs by their absolute paths.
	if abs, err := filepath.Abs(o.binDir); err == nil {
		o.binDir = abs
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "hostnet-bench: needs root (sudo make bench)")
		os.Exit(2)
	}
	os.Exit(run(o))
}

// bench is the state of one run.
type bench struct {
	o        benchOpts
	d        *daemon.Daemon
	work     string // below d.Dir, removed with it
	res      Results
	rts      []*rtSpec
	net      *netEnv
	cleanups []func() error
	mu       sync.Mutex
	logf     func(format string, args ...any)
}

// hostnetViaRunc is hostnet's shim driving runc 1.5.2 through go-runc
// (BinaryName): against "runc 1.5.2" it isolates what the shim gains,
// against "hostnet" what hostnet-runc gains.
const hostnetViaRunc = "hostnet shim + runc 1.5.2"

// rtSpec is one runtime as containerd sees it.
type rtSpec struct {
	name    string // row label
	runtime string // containerd runtime type
	binary  string // the OCI runtime binary (runc shim's BinaryName)
	version string
	// configPath is hostnet's TOML document naming binary, for
	// `ctr --runtime-config-path`: hostnet's shim driving another runtime.
	configPath string
}

func (b *bench) onCleanup(f func() error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}

// cleanup runs the registered cleanups last-first, then stops the daemon.
func (b *bench) cleanup() error {
	b.mu.Lock()
	fs := b.cleanups
	b.cleanups = nil
	b.mu.Unlock()
	var errs []error
	for i := len(fs) - 1; i >= 0; i-- {
		errs = append(errs, fs[i]())
	}
	if b.d != nil {
		errs = append(errs, b.d.Stop())
	}
	return errors.Join(errs...)
}

func run(o benchOpts) int {
	start := time.Now()
	b := &bench{o: o, logf: func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(f, a...))
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// SIGINT/SIGTERM: clean everything up, then exit 130.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	var once sync.Once
	doCleanup := func() {
		once.Do(func() {
			if err := b.cleanup(); err != nil {
				fmt.Fprintln(os.Stderr, "hostnet-bench: cleanup:", err)
			}
		})
	}
	go func() {
		sig := <-sigc
		fmt.Fprintf(os.Stderr, "hostnet-bench: %v: cleaning up\n", sig)
		cancel()
		doCleanup()
		os.Exit(130)
	}()

	code := 0
	if err := b.setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "hostnet-bench: setup:", err)
		code = 1
	} else {
		b.runSections(ctx)
		b.res.Config.DurationS = time.Since(start).Seconds()
		if err := b.report(); err != nil {
			fmt.Fprintln(os.Stderr, "hostnet-bench:", err)
			code = 1
		}
	}
	signal.Stop(sigc)
	b.logf("cleaning up")
	doCleanup()
	if code != 0 && b.d != nil {
		fmt.Fprintln(os.Stderr, "containerd log tail:\n"+b.d.LogTail(30))
	}
	return code
}

func (b *bench) setup(ctx context.Context) error {
	o := b.o
	ns := fmt.Sprintf("hostnet-bench-%d", os.Getpid())
	b.res.Config = RunConf{N: o.n, Startup: o.startupN, Scale: o.scale, MemMany: o.memMany, SettleS: o.settle.Seconds(),
		CRIPods: o.criPods, CRIContainers: o.criContainers, IperfSecs: o.iperfSecs,
		IperfRuns: o.iperfRuns, Requests: o.requests, Started: time.Now().UTC().Format(time.RFC3339)}
	b.res.Machine = probeMachine(o)
	b.logf("%s", b.res.Machine.Line())
	for _, p := range []string{o.runc, filepath.Join(o.binDir, "hostnet-runc"), filepath.Join(o.binDir, "containerd-shim-hostnet-v1")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (make build; runc v1.5.2 is built by make bench)", err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	d, err := daemon.Start(sctx, daemon.Config{
		BinDir:       o.binDir,
		Namespace:    ns,
		RuntimeRoots: []string{daemon.DefaultRuntimeRoot(daemon.HostnetRuntime), daemon.DefaultRuntimeRoot(daemon.RuncRuntime)},
	})
	if err != nil {
		return err
	}
	b.d = d
	b.work = filepath.Join(d.Dir, "bench")
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	archive := filepath.Join(d.Dir, "busybox.tar")
	if _, err := image.WriteFile(archive, image.Options{}); err != nil {
		return err
	}
	if err := d.ImportImage(sctx, archive); err != nil {
		return err
	}
	crunWrap, err := b.writeCrunWrapper()
	if err != nil {
		return err
	}
	viaRunc := filepath.Join(b.work, "hostnet-runc152.toml")
	if err := os.WriteFile(viaRunc, []byte("[runtime]\nbinary = "+strconv.Quote(o.runc)+"\n"), 0o644); err != nil {
		return err
	}
	b.rts = []*rtSpec{
		{name: "hostnet", runtime: daemon.HostnetRuntime, binary: filepath.Join(o.binDir, "hostnet-runc"), version: b.res.Machine.Hostnet},
		{name: "runc 1.5.2", runtime: daemon.RuncRuntime, binary: o.runc, version: b.res.Machine.Runc},
		{name: hostnetViaRunc, runtime: daemon.HostnetRuntime, binary: o.runc, version: b.res.Machine.Runc, configPath: viaRunc},
		{name: "runc 1.1.5 (Debian)", runtime: daemon.RuncRuntime, binary: o.debRunc, version: b.res.Machine.DebianRunc},
		{name: "crun 1.8.1 (wrapper)", runtime: daemon.RuncRuntime, binary: crunWrap, version: b.res.Machine.Crun},
	}
	if name, dir, ok := strings.Cut(o.altShim, "="); ok {
		// containerd runs a shim given by absolute path; that shim finds
		// the hostnet-runc beside it, as an installed one does.
		dir, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		b.rts = append(b.rts, &rtSpec{name: name, runtime: filepath.Join(dir, "containerd-shim-hostnet-v1"), binary: filepath.Join(dir, "hostnet-runc"), version: name})
	}
	b.res.Notes = append(b.res.Notes,
		"crun 1.8.1 rejects the ociVersion 1.3.0 containerd 2.4 writes, and refuses this cgroup v1 hybrid host ('cgroups in hybrid mode not supported, drop all controllers from cgroupv2') though its v2 hierarchy has no controllers. Through containerd it runs behind a bench-only wrapper script that rewrites ociVersion to 1.0.2 in config.json (sed) and execs crun through `unshare --mount` in a mount namespace without /sys/fs/cgroup/unified, so each of its runtime calls includes sh, sed, unshare and umount; its cgroups are real cgroupfs v1 ones.",
		"runc 1.5.2 is `CGO_ENABLED=1 go install -tags 'seccomp urfave_cli_no_docs' github.com/opencontainers/runc@v1.5.2` (no libpathrs tag: it needs the Rust libpathrs).",
		"runc-shim containers run with the host network (ctr --net-host) so they match hostnet's default host mode.")
	return nil
}

// writeCrunWrapper writes the bench-only crun wrapper: crun 1.8 refuses
// ociVersion 1.3.0, which containerd 2.4 writes.
func (b *bench) writeCrunWrapper() (string, error) {
	p := filepath.Join(b.work, "crun-ociversion-wrapper")
	script := `#!/bin/sh
# hostnet-bench only: crun 1.8 rejects ociVersion 1.3.0 (containerd 2.4);
# rewrite it to 1.0.2 in the bundle's config.json, then run crun. And crun
# refuses cgroup v1 hybrid hosts: run it in a mount namespace without the
# v2 hierarchy.
prev=
for a in "$@"; do
	if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then
		sed -i 's/"ociVersion":"[^"]*"/"ociVersion":"1.0.2"/' "$a/config.json"
	fi
	prev=$a
done
if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
	exec unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$0" "$@"' ` + b.o.crun + ` --cgroup-manager=cgroupfs "$@"
fi
exec ` + b.o.crun + ` --cgroup-manager=cgroupfs "$@"
`
	return p, os.WriteFile(p, []byte(script), 0o755)
}

func (b *bench) want(section string) bool {
	if b.o.only == "" {
		return true
	}
	for _, s := range strings.Split(b.o.only, ",") {
		if strings.TrimSpace(s) == section {
			return true
		}
	}
	return false
}

func (b *bench) runSections(ctx context.Context) {
	sections := []struct {
		name string
		f    func(context.Context) []*Table
	}{
		{"lifecycle", b.ctrLifecycle},
		{"client", b.clientLifecycle},
		{"breakdown", b.breakdown},
		{"runtime", b.runtimeAlone},
		{"startup", b.startup},
		{"memory", b.shimMemory},
		{"cri", b.criMemory},
		{"network", b.network},
		{"scale", b.scaleTest},
	}
	for _, s := range sections {
		if !b.want(s.name) || ctx.Err() != nil {
			continue
		}
		b.logf("section %s", s.name)
		tables := s.f(ctx)
		for _, t := range tables {
			t.finish()
			t.Markdown(os.Stderr)
		}
		b.res.Tables = append(b.res.Tables, tables...)
	}
	b.res.scoreGoals(b.goals())
}

func (b *bench) report() error {
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		return err
	}
	var md bytes.Buffer
	b.res.Markdown(&md)
	os.Stdout.Write(md.Bytes())
	if err := os.WriteFile(filepath.Join(b.o.out, "results.md"), md.Bytes(), 0o644); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(b.o.out, "results.json"), &b.res); err != nil {
		return err
	}
	var svg bytes.Buffer
	b.res.SVG(&svg)
	if err := os.WriteFile(filepath.Join(b.o.out, "chart.svg"), svg.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s, %s and %s\n", filepath.Join(b.o.out, "results.md"), filepath.Join(b.o.out, "results.json"), filepath.Join(b.o.out, "chart.svg"))
	return nil
}

// Machine describes where the numbers were taken.
type Machine struct {
	Cores      int     `json:"cores"`
	CPU        string  `json:"cpu"`
	MemGiB     float64 `json:"mem_gib"`
	Kernel     string  `json:"kernel"`
	Cgroup     string  `json:"cgroup"`
	Containerd string  `json:"containerd"`
	Runc       string  `json:"runc"`
	DebianRunc string  `json:"debian_runc"`
	Crun       string  `json:"crun"`
	Hostnet    string  `json:"hostnet"`
	Go         string  `json:"go"`
	Load       string  `json:"loadavg_at_start"`
}

func (m Machine) Line() string {
	return fmt.Sprintf("machine: %d cores (%s), %.0f GiB, Linux %s, cgroup %s; containerd %s, runc %s (anchor), Debian runc %s, crun %s, hostnet %s, %s; load avg at start %s",
		m.Cores, m.CPU, m.MemGiB, m.Kernel, m.Cgroup, m.Containerd, m.Runc, m.DebianRunc, m.Crun, m.Hostnet, m.Go, m.Load)
}

func probeMachine(o benchOpts) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = cstr(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%f", &kb)
		m.MemGiB = kb / (1 << 20)
	}
	var st syscall.Statfs_t
	switch {
	case syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == 0x63677270:
		m.Cgroup = "v2"
	case fileExists("/sys/fs/cgroup/unified/cgroup.controllers"):
		m.Cgroup = "v1 (hybrid)"
	default:
		m.Cgroup = "v1"
	}
	m.Containerd = versionWord(outputOf("containerd", "--version"))
	m.Runc = versionWord(outputOf(o.runc, "--version"))
	m.DebianRunc = versionWord(outputOf(o.debRunc, "--version"))
	m.Crun = versionWord(outputOf(o.crun, "--version"))
	m.Hostnet = strings.TrimSpace(outputOf("git", "describe", "--tags", "--always", "--dirty"))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		m.Load = strings.Join(f[:3], " ")
	}
	return m
}

func outputOf(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}

// versionWord returns the third field of the first line, where
// `containerd --version`, `runc --version` and `crun --version` put it.
func versionWord(s string) string {
	const i = 2
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if i < len(f) {
		return f[i]
	}
	return strings.TrimSpace(line)
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
