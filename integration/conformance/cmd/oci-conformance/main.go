// Command oci-conformance runs the OCI runtime-tools validation suite
// against hostnet-runc and runc, side by side, and fails when hostnet-runc
// fails a test that runc passes.
//
// Usage (as root, from the repository root):
//
//	CGO_ENABLED=0 go build -o bin/hostnet-runc ./runtime/cmd/hostnet-runc
//	go run ./integration/conformance/cmd/oci-conformance -hostnet-runc bin/hostnet-runc -json conformance.json
//
// See integration/conformance/README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const (
	defaultModule  = "github.com/opencontainers/runtime-tools"
	defaultVersion = "v0.9.1-0.20260316125833-8a4db579f5c8"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		hostnet   = flag.String("hostnet-runc", "bin/hostnet-runc", "hostnet-runc binary under test")
		runc      = flag.String("runc", "/usr/sbin/runc", "reference runc binary")
		module    = flag.String("module", defaultModule, "runtime-tools module path")
		version   = flag.String("version", defaultVersion, "runtime-tools module version")
		cache     = flag.String("cache", "/var/cache/hostnet/runtime-tools", "build cache root (binaries go in <cache>/<version>)")
		gobin     = flag.String("go", "go", "go command used to download and build the suite")
		rebuild   = flag.Bool("rebuild", false, "rebuild the suite even when the cache is current")
		buildOnly = flag.Bool("build-only", false, "build (or check) the cached suite and exit")
		timeout   = flag.Duration("timeout", 60*time.Second, "timeout per test and runtime")
		runRE     = flag.String("run", "", "only run tests whose name matches this regexp")
		jsonOut   = flag.String("json", "", "write the results as JSON to this file")
		mdOut     = flag.String("md", "", "also write the Markdown report to this file")
		workDir   = flag.String("work", "", "work directory (default: a new directory under $TMPDIR)")
		keep      = flag.Bool("keep", false, "keep each test's directory (bundles are removed by the tests themselves)")
		artifacts = flag.String("artifacts", "", "copy each run's stdout.tap, stderr.txt, calls.log and runtime.log here")
	)
	noSeccomp := flag.Bool("no-seccomp", false, "diagnostic: remove linux.seccomp from each config.json before `create`, for both runtimes (shows what fails besides seccomp; not for the gate)")
	stripFile := flag.String("strip-seccomp-file", "", "internal: remove linux.seccomp from this config.json and exit")
	flag.Parse()
	if *stripFile != "" {
		if err := stripSeccomp(*stripFile); err != nil {
			fmt.Fprintf(os.Stderr, "oci-conformance: %v\n", err)
			return 1
		}
		return 0
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "oci-conformance: "+format+"\n", args...) }

	suite, err := BuildSuite(*gobin, *cache, *module, *version, *rebuild, logf)
	if err != nil {
		logf("build: %v", err)
		return 2
	}
	if suite.Cached {
		logf("using cached build %s (%d tests)", suite.Dir, len(suite.Tests))
	} else {
		logf("built %d tests into %s", len(suite.Tests), suite.Dir)
	}
	if *buildOnly {
		return 0
	}
	if os.Geteuid() != 0 {
		logf("must run as root")
		return 2
	}

	var runtimes []Runtime
	for _, rt := range []struct{ name, path string }{{refName, *runc}, {testName, *hostnet}} {
		p, err := filepath.Abs(rt.path)
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			logf("%s: %v", rt.name, err)
			return 2
		}
		// Before the reaper starts, os/exec is still safe to use.
		out, _ := exec.Command(p, "--version").CombinedOutput()
		v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		runtimes = append(runtimes, Runtime{Name: rt.name, Path: p, Version: v})
	}

	tests := suite.Tests
	if *runRE != "" {
		re, err := regexp.Compile(*runRE)
		if err != nil {
			logf("-run: %v", err)
			return 2
		}
		tests = nil
		for _, t := range suite.Tests {
			if re.MatchString(t) {
				tests = append(tests, t)
			}
		}
	}
	if len(tests) == 0 {
		logf("no tests selected")
		return 2
	}

	wd := *workDir
	if wd == "" {
		if wd, err = os.MkdirTemp("", "oci-conformance-"); err != nil {
			logf("%v", err)
			return 2
		}
	} else if err := os.MkdirAll(wd, 0o755); err != nil {
		logf("%v", err)
		return 2
	}
	if wd, err = filepath.Abs(wd); err != nil {
		logf("%v", err)
		return 2
	}
	// Upstream runs bundles straight under /tmp: keep the work directory
	// traversable for the remapped root of user-namespace tests.
	if err := os.Chmod(wd, 0o755); err != nil {
		logf("%v", err)
		return 2
	}
	reaper, err := NewReaper()
	if err != nil {
		logf("%v", err)
		return 2
	}

	rep := &Report{Suite: suite, Runtimes: runtimes, Started: time.Now(), Timeout: timeout.String()}
	rep.HostFindings = sweepSuiteCgroups()
	handleInterrupts()
	runner := &Runner{Suite: suite, Reaper: reaper, WorkDir: wd, Timeout: *timeout, Keep: *keep, Artifacts: *artifacts}
	if *noSeccomp {
		if runner.StripSeccomp, err = os.Executable(); err != nil {
			logf("%v", err)
			return 2
		}
		rep.NoSeccomp = true
		logf("-no-seccomp: linux.seccomp is removed from every config.json before create (diagnostic run)")
	}
	for i, t := range tests {
		tr := TestResult{Name: t, Results: map[string]RunResult{}}
		line := fmt.Sprintf("[%2d/%d] %-34s", i+1, len(tests), t)
		for _, rt := range runtimes {
			if isInterrupted() {
				break
			}
			r := runner.Run(t, rt)
			tr.Results[rt.Name] = r
			line += fmt.Sprintf("  %s: %-4s %2d/%d/%d %5.1fs", rt.Name, r.Verdict, r.TAP.Passed, r.TAP.Failed, r.TAP.Skipped, r.Seconds)
		}
		if tr.Results[refName].Verdict == Pass && tr.Results[testName].Verdict != Pass {
			line += "  REGRESSION"
		}
		if isInterrupted() {
			logf("interrupted: cleaned up after %s, stopping (its results are not counted)", t)
			break
		}
		fmt.Fprintln(os.Stderr, line)
		rep.Tests = append(rep.Tests, tr)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	if !*keep {
		if *workDir == "" {
			_ = os.RemoveAll(wd)
		} else {
			for _, rt := range runtimes {
				_ = os.RemoveAll(filepath.Join(wd, rt.Name))
			}
		}
	}
	rep.finish()

	rep.writeMarkdown(os.Stdout)
	if *mdOut != "" {
		f, err := os.Create(*mdOut)
		if err == nil {
			rep.writeMarkdown(f)
			err = f.Close()
		}
		if err != nil {
			logf("%v", err)
			return 2
		}
	}
	if *jsonOut != "" {
		if err := rep.writeJSON(*jsonOut); err != nil {
			logf("%v", err)
			return 2
		}
	}
	if isInterrupted() {
		logf("interrupted after %d of %d tests", len(rep.Tests), len(tests))
		return 2
	}
	if len(rep.Regressions) > 0 {
		logf("FAIL: %d tests runc passes fail on %s: %s", len(rep.Regressions), testName, strings.Join(rep.Regressions, ", "))
		return 1
	}
	logf("OK: %s passes every test runc passes", testName)
	return 0
}

// stripSeccomp removes linux.seccomp from a bundle's config.json, keeping
// everything else as it was.
func stripSeccomp(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var linux map[string]json.RawMessage
	if raw, ok := cfg["linux"]; !ok || json.Unmarshal(raw, &linux) != nil {
		return nil
	}
	if _, ok := linux["seccomp"]; !ok {
		return nil
	}
	delete(linux, "seccomp")
	if cfg["linux"], err = json.Marshal(linux); err != nil {
		return err
	}
	if b, err = json.Marshal(cfg); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
