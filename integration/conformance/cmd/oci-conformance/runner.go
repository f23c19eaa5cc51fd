package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Runtime is one OCI runtime under test.
type Runtime struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version"`
}

// Verdicts.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// RunResult is one validation program run against one runtime.
type RunResult struct {
	Verdict  string    `json:"verdict"`
	Reason   string    `json:"reason,omitempty"`
	TAP      TAPResult `json:"tap"`
	Exit     int       `json:"exit_code"`
	TimedOut bool      `json:"timed_out,omitempty"`
	Seconds  float64   `json:"seconds"`
	// RuntimeCalls are the runtime command lines the test ran, with their
	// exit status ("create --bundle ... ID => exit 1").
	RuntimeCalls []string `json:"runtime_calls,omitempty"`
	// RuntimeLog is the runtime's --log output (JSON lines).
	RuntimeLog []string  `json:"runtime_log,omitempty"`
	Stderr     string    `json:"stderr,omitempty"`
	Stdout     string    `json:"stdout,omitempty"` // only kept for failures
	Findings   []Finding `json:"findings,omitempty"`
}

// Runner runs validation programs in private directories.
type Runner struct {
	Suite     *Suite
	Reaper    *Reaper
	WorkDir   string
	Timeout   time.Duration
	Keep      bool
	Artifacts string
	// StripSeccomp, when set, is the harness binary: the wrapper runs it
	// to drop linux.seccomp from config.json before each create.
	StripSeccomp string
}

// wrapperScript is what the test sees as $RUNTIME: the runtime with a
// private state root and a JSON log, recording each call and its status.
const wrapperScript = `#!/bin/sh
%[5]s
%[1]s --root %[2]s --log %[3]s --log-format json "$@"
rc=$?
printf '%%s => exit %%d\n' "$*" "$rc" >> %[4]s
exit $rc
`

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Run runs one test against one runtime and cleans up after it.
func (r *Runner) Run(test string, rt Runtime) RunResult {
	dir := filepath.Join(r.WorkDir, rt.Name, test)
	res, err := r.run(test, rt, dir)
	if err != nil {
		res.Verdict, res.Reason = Fail, "harness: "+err.Error()
	}
	if r.Artifacts != "" {
		dst := filepath.Join(r.Artifacts, rt.Name, test)
		if err := os.MkdirAll(dst, 0o755); err == nil {
			for _, f := range []string{"stdout.tap", "stderr.txt", "calls.log", "runtime.log"} {
				_ = copyFile(filepath.Join(dir, f), filepath.Join(dst, f), 0o644)
			}
		}
	}
	if !r.Keep {
		if err := os.RemoveAll(dir); err != nil {
			res.Findings = append(res.Findings, Finding{Kind: "cleanup-error", Detail: fmt.Sprintf("remove %s: %v", dir, err)})
		}
	}
	return res
}

func (r *Runner) run(test string, rt Runtime, dir string) (RunResult, error) {
	var res RunResult
	cwd := filepath.Join(dir, "cwd")
	tmp := filepath.Join(dir, "tmp")
	state := filepath.Join(dir, "state")
	for _, d := range []string{cwd, tmp, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return res, err
		}
	}
	// The tests copy ./runtimetest into each bundle and untar
	// ./rootfs-<arch>.tar.gz: real files (a symlink would be copied as a
	// symlink), never the cache's own, which a test could modify.
	if err := copyFile(r.Suite.runtimetest(), filepath.Join(cwd, "runtimetest"), 0o755); err != nil {
		return res, err
	}
	if err := copyFile(r.Suite.rootfs(), filepath.Join(cwd, rootfsName()), 0o644); err != nil {
		return res, err
	}
	callsLog := filepath.Join(dir, "calls.log")
	runtimeLog := filepath.Join(dir, "runtime.log")
	wrapper := filepath.Join(dir, "runtime")
	strip := ""
	if r.StripSeccomp != "" {
		strip = `if [ "$1" = create ] || [ "$1" = run ]; then
  b=. p=
  for a in "$@"; do [ "$p" = --bundle ] || [ "$p" = -b ] && b=$a; p=$a; done
  ` + shQuote(r.StripSeccomp) + ` -strip-seccomp-file "$b/config.json" || exit 1
fi`
	}
	script := fmt.Sprintf(wrapperScript, shQuote(rt.Path), shQuote(state), shQuote(runtimeLog), shQuote(callsLog), strip)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return res, err
	}
	stdout, err := os.Create(filepath.Join(dir, "stdout.tap"))
	if err != nil {
		return res, err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr.txt"))
	if err != nil {
		return res, err
	}
	defer stderr.Close()

	env := []string{"RUNTIME=" + wrapper, "TMPDIR=" + tmp}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "RUNTIME" && k != "TMPDIR" {
			env = append(env, kv)
		}
	}

	before := snapshotHost()
	start := time.Now()
	p, err := r.Reaper.Start([]string{r.Suite.testBin(test)}, cwd, env, stdout, stderr)
	if err != nil {
		return res, err
	}
	ws, timedOut := p.Wait(r.Timeout)
	res.Seconds = time.Since(start).Seconds()
	res.Exit, res.TimedOut = exitCode(ws), timedOut

	calls := readLines(callsLog)
	res.Findings = cleanupRun(r.Reaper, rt, dir, state, calls, before)

	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	res.TAP = ParseTAP(string(out))
	res.Stderr = truncate(string(errOut), 16<<10)
	res.RuntimeCalls = calls
	res.RuntimeLog = readLines(runtimeLog)
	if len(res.RuntimeLog) > 200 {
		res.RuntimeLog = res.RuntimeLog[len(res.RuntimeLog)-200:]
	}
	res.Verdict, res.Reason = verdict(res, r.Timeout)
	if res.Verdict == Fail {
		res.Stdout = truncate(string(out), 64<<10)
	}
	return res, nil
}

func verdict(r RunResult, timeout time.Duration) (string, string) {
	t := r.TAP
	switch {
	case r.TimedOut:
		return Fail, fmt.Sprintf("timed out after %s", timeout)
	case t.BailOut:
		return Fail, "bailed out"
	case t.Failed > 0:
		return Fail, fmt.Sprintf("%d of %d subtests failed", t.Failed, t.Total())
	case r.Exit != 0:
		return Fail, fmt.Sprintf("exit status %d", r.Exit)
	case t.Planned < 0:
		return Fail, "no TAP plan (test did not finish)"
	case t.Errors > 0:
		return Fail, fmt.Sprintf("%d errors reported outside any subtest", t.Errors)
	case t.Planned != t.Total():
		return Fail, fmt.Sprintf("planned %d subtests, ran %d", t.Planned, t.Total())
	case t.Total() == 0:
		// Plan 1..0 and no error: the hook lifecycle tests (hooks,
		// prestart, poststart, poststop and their _fail variants) report
		// success this way, and failure as an "error" YAML block.
		return Pass, "no subtests and no error reported"
	case t.Passed == 0:
		return Skip, ""
	}
	return Pass, ""
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n/2] + "\n... [truncated] ...\n" + s[len(s)-n/2:]
}
