// Package bench compares hostnet with containerd's stock runc shim on a
// private containerd. Run it with `make bench`; it needs root and the
// binaries `make build` puts in bin/.
//
// Each benchmark alternates the two runtimes in every iteration, so drift
// in the machine's load hits both alike, and prints a Markdown table with
// the mean, median and 95th percentile of each and their ratio.
package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

var (
	testDaemon *daemon.Daemon
	binDir     string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Start a daemon only when benchmarks were asked for.
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		return m.Run()
	}
	if os.Geteuid() != 0 {
		fmt.Println("bench: skipping, the benchmarks need root (sudo make bench)")
		return 0
	}
	repo, err := daemon.RepoRoot()
	if err != nil {
		return fail(err)
	}
	binDir = filepath.Join(repo, "bin")
	if v := os.Getenv("HOSTNET_BIN_DIR"); v != "" {
		binDir = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{
		BinDir:       binDir,
		Namespace:    fmt.Sprintf("hostnet-bench-%d", os.Getpid()),
		RuntimeRoots: []string{daemon.DefaultRuntimeRoot(daemon.HostnetRuntime), daemon.DefaultRuntimeRoot(daemon.RuncRuntime)},
	})
	if err != nil {
		return fail(err)
	}
	undo := d.StopOnInterrupt()
	code := func() int {
		archive := filepath.Join(d.Dir, "busybox.tar")
		if _, err := image.WriteFile(archive, image.Options{}); err != nil {
			return fail(err)
		}
		if err := d.ImportImage(ctx, archive); err != nil {
			return fail(err)
		}
		testDaemon = d
		return m.Run()
	}()
	if code != 0 {
		fmt.Printf("bench: last lines of %s:\n%s\n", d.LogPath, d.LogTail(40))
	}
	undo()
	if err := d.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: teardown:", err)
		code = 1
	}
	return code
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 1
}

// contender is one side of a comparison: a command to time.
type contender struct {
	name    string
	samples []time.Duration
	run     func() error
}

// compare runs every contender once per b.Loop iteration, rotating which
// goes first, after warmup untimed rounds; it then reports each one's mean
// as a metric and prints a table.
func compare(b *testing.B, title string, warmup int, cs ...*contender) {
	b.Helper()
	for range warmup {
		for _, c := range cs {
			if err := c.run(); err != nil {
				b.Fatalf("%s (warm-up): %v", c.name, err)
			}
		}
	}
	i := 0
	for b.Loop() {
		for k := range cs {
			c := cs[(i+k)%len(cs)]
			start := time.Now()
			if err := c.run(); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			c.samples = append(c.samples, time.Since(start))
		}
		i++
	}
	b.StopTimer()

	base := summarize(cs[len(cs)-1].samples)
	fmt.Printf("\n### %s (%d runs each, interleaved)\n\n", title, i)
	fmt.Println("| runtime | mean | median | p95 | mean vs " + cs[len(cs)-1].name + " |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, c := range cs {
		s := summarize(c.samples)
		fmt.Printf("| %s | %s | %s | %s | %.2fx |\n", c.name, ms(s.mean), ms(s.median), ms(s.p95), float64(s.mean)/float64(base.mean))
		b.ReportMetric(float64(s.mean)/float64(time.Millisecond), c.name+"-ms/op")
	}
	fmt.Println()
}

type stats struct{ mean, median, p95 time.Duration }

func summarize(d []time.Duration) stats {
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return stats{
		mean:   sum / time.Duration(len(s)),
		median: s[len(s)/2],
		p95:    s[min(len(s)-1, (len(s)*95+99)/100-1)],
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// BenchmarkCtrRunLifecycle times `ctr run --rm <image> <id> true`: create,
// start, wait, delete, for hostnet and for the runc shim with --net-host.
func BenchmarkCtrRunLifecycle(b *testing.B) {
	ctrRun := func(name, runtime string, extra ...string) func() error {
		n := 0
		return func() error {
			n++
			id := fmt.Sprintf("bench-%s-%d", name, n)
			args := append([]string{"run", "--rm", "--fifo-dir", testDaemon.FIFODir, "--runtime", runtime}, extra...)
			args = append(args, image.DefaultName, id, "true")
			_, err := testDaemon.CtrOutput(b.Context(), args...)
			return err
		}
	}
	compare(b, "`ctr run --rm "+image.DefaultName+" true`", 2,
		&contender{name: "hostnet", run: ctrRun("hostnet", daemon.HostnetRuntime)},
		&contender{name: "runc", run: ctrRun("runc", daemon.RuncRuntime, "--net-host")},
	)
}

// BenchmarkVersionStartup times process start-up of `hostnet-runc
// --version` against Debian's `runc --version`, as hyperfine would.
func BenchmarkVersionStartup(b *testing.B) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		b.Skip(err)
	}
	version := func(bin string) func() error {
		return func() error { return exec.Command(bin, "--version").Run() }
	}
	compare(b, "start-up: `--version`", 5,
		&contender{name: "hostnet-runc", run: version(filepath.Join(binDir, "hostnet-runc"))},
		&contender{name: "runc", run: version(runc)},
	)
}
