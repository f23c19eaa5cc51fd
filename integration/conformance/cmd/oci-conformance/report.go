package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// The gate compares the runtime under test with the reference runtime.
const (
	refName  = "runc"
	testName = "hostnet-runc"
)

// TestResult is one validation program against every runtime.
type TestResult struct {
	Name    string               `json:"name"`
	Results map[string]RunResult `json:"results"`
	// Regression: the reference runtime passes the test fully and the
	// runtime under test does not.
	Regression bool `json:"regression"`
}

// Totals counts one runtime's results.
type Totals struct {
	Pass, Fail, Skip                      int
	SubPassed, SubFailed, SubSkipped      int
	Seconds                               float64
	LeftContainers, LeftProcs, LeftMounts int
	LeftCgroups                           int
}

// Report is the whole run; it is also the -json output.
type Report struct {
	Suite       *Suite             `json:"suite"`
	Runtimes    []Runtime          `json:"runtimes"`
	Started     time.Time          `json:"started"`
	Seconds     float64            `json:"seconds"`
	Timeout     string             `json:"timeout_per_test"`
	Tests       []TestResult       `json:"tests"`
	Totals      map[string]*Totals `json:"totals"`
	Regressions []string           `json:"regressions"`
	// Improvements: tests the runtime under test passes and runc does not.
	Improvements []string  `json:"improvements"`
	HostFindings []Finding `json:"host_findings,omitempty"`
	// NoSeccomp: a -no-seccomp diagnostic run.
	NoSeccomp bool `json:"no_seccomp,omitempty"`
}

func (rep *Report) finish() {
	rep.Totals = map[string]*Totals{}
	rep.Regressions, rep.Improvements = []string{}, []string{}
	for _, rt := range rep.Runtimes {
		rep.Totals[rt.Name] = &Totals{}
	}
	for i := range rep.Tests {
		t := &rep.Tests[i]
		for name, r := range t.Results {
			tot := rep.Totals[name]
			switch r.Verdict {
			case Pass:
				tot.Pass++
			case Skip:
				tot.Skip++
			default:
				tot.Fail++
			}
			tot.SubPassed += r.TAP.Passed
			tot.SubFailed += r.TAP.Failed
			tot.SubSkipped += r.TAP.Skipped
			tot.Seconds += r.Seconds
			for _, f := range r.Findings {
				switch f.Kind {
				case "container":
					tot.LeftContainers++
				case "process":
					tot.LeftProcs++
				case "mount":
					tot.LeftMounts++
				case "cgroup":
					tot.LeftCgroups++
				}
			}
		}
		ref, okRef := t.Results[refName]
		got, okGot := t.Results[testName]
		t.Regression = okRef && okGot && ref.Verdict == Pass && got.Verdict != Pass
		if t.Regression {
			rep.Regressions = append(rep.Regressions, t.Name)
		}
		if okRef && okGot && got.Verdict == Pass && ref.Verdict != Pass {
			rep.Improvements = append(rep.Improvements, t.Name)
		}
	}
}

func (rep *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func cell(r RunResult, ok bool) (string, string) {
	if !ok {
		return "-", "-"
	}
	v := strings.ToUpper(r.Verdict)
	if r.TimedOut {
		v = "TIMEOUT"
	}
	return v, fmt.Sprintf("%d / %d / %d", r.TAP.Passed, r.TAP.Failed, r.TAP.Skipped)
}

func (rep *Report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## OCI runtime-tools validation: %s vs %s\n\n", testName, refName)
	fmt.Fprintf(w, "Suite `%s@%s` (%d tests, built with -mod=%s), timeout %s per test, run %s, took %s.\n\n",
		rep.Suite.Module, rep.Suite.Version, len(rep.Tests), rep.Suite.ModMode, rep.Timeout,
		rep.Started.UTC().Format(time.RFC3339), time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))
	for _, rt := range rep.Runtimes {
		fmt.Fprintf(w, "- %s: `%s` (%s)\n", rt.Name, rt.Path, rt.Version)
	}
	if rep.NoSeccomp {
		fmt.Fprintf(w, "\n**Diagnostic run (-no-seccomp): linux.seccomp was removed from every config.json before create, for both runtimes.**\n")
	}
	fmt.Fprintf(w, "\nSubtest columns are TAP `ok` / `not ok` / `# skip` counts.\n\n")

	fmt.Fprintf(w, "| test |")
	for _, rt := range rep.Runtimes {
		fmt.Fprintf(w, " %s | ok / not ok / skip |", rt.Name)
	}
	fmt.Fprintf(w, " note |\n|---|")
	for range rep.Runtimes {
		fmt.Fprintf(w, "---|---|")
	}
	fmt.Fprintf(w, "---|\n")
	for _, t := range rep.Tests {
		fmt.Fprintf(w, "| %s |", t.Name)
		for _, rt := range rep.Runtimes {
			r, ok := t.Results[rt.Name]
			v, c := cell(r, ok)
			fmt.Fprintf(w, " %s | %s |", v, c)
		}
		var notes []string
		if t.Regression {
			notes = append(notes, "**REGRESSION vs runc**")
		}
		for _, n := range rep.Improvements {
			if n == t.Name {
				notes = append(notes, "passes only on "+testName)
			}
		}
		leaks := 0
		for _, rt := range rep.Runtimes {
			for _, f := range t.Results[rt.Name].Findings {
				if f.Kind == "container" || f.Kind == "process" || f.Kind == "mount" || f.Kind == "cgroup" {
					leaks++
				}
			}
		}
		if leaks > 0 {
			notes = append(notes, fmt.Sprintf("%d leftovers cleaned", leaks))
		}
		fmt.Fprintf(w, " %s |\n", strings.Join(notes, "; "))
	}

	fmt.Fprintf(w, "\n### Totals\n\n| | ")
	for _, rt := range rep.Runtimes {
		fmt.Fprintf(w, "%s | ", rt.Name)
	}
	fmt.Fprintf(w, "\n|---|")
	for range rep.Runtimes {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	row := func(label string, f func(*Totals) string) {
		fmt.Fprintf(w, "| %s |", label)
		for _, rt := range rep.Runtimes {
			fmt.Fprintf(w, " %s |", f(rep.Totals[rt.Name]))
		}
		fmt.Fprintln(w)
	}
	itoa := func(n int) string { return fmt.Sprint(n) }
	row("tests passed", func(t *Totals) string { return itoa(t.Pass) })
	row("tests failed", func(t *Totals) string { return itoa(t.Fail) })
	row("tests skipped", func(t *Totals) string { return itoa(t.Skip) })
	row("subtests ok", func(t *Totals) string { return itoa(t.SubPassed) })
	row("subtests not ok", func(t *Totals) string { return itoa(t.SubFailed) })
	row("subtests skipped", func(t *Totals) string { return itoa(t.SubSkipped) })
	row("time in tests", func(t *Totals) string { return fmt.Sprintf("%.1fs", t.Seconds) })
	row("leftover containers / processes / mounts / cgroups cleaned", func(t *Totals) string {
		return fmt.Sprintf("%d / %d / %d / %d", t.LeftContainers, t.LeftProcs, t.LeftMounts, t.LeftCgroups)
	})

	fmt.Fprintf(w, "\n### Regressions vs runc: %d\n\n", len(rep.Regressions))
	if len(rep.Regressions) == 0 {
		fmt.Fprintf(w, "None: %s passes every test runc passes.\n", testName)
	} else {
		fmt.Fprintf(w, "Tests runc passes fully that %s does not: %s\n", testName, strings.Join(rep.Regressions, ", "))
	}
	if len(rep.Improvements) > 0 {
		fmt.Fprintf(w, "\nTests only %s passes: %s\n", testName, strings.Join(rep.Improvements, ", "))
	}
	if len(rep.Regressions) > 0 {
		// Group by the first error hostnet-runc logged: usually one
		// missing feature explains many tests.
		var causes []string
		byCause := map[string][]string{}
		for _, t := range rep.Tests {
			if !t.Regression {
				continue
			}
			c := firstError(t.Results[testName])
			if _, ok := byCause[c]; !ok {
				causes = append(causes, c)
			}
			byCause[c] = append(byCause[c], t.Name)
		}
		fmt.Fprintf(w, "\nBy first error %s logged (or the test's verdict when it logged none):\n\n", testName)
		for _, c := range causes {
			fmt.Fprintf(w, "- %d: `%s`: %s\n", len(byCause[c]), c, strings.Join(byCause[c], ", "))
		}
	}
	for _, t := range rep.Tests {
		if t.Regression {
			writeFailure(w, t.Name, t.Results[testName])
		}
	}

	var findings []string
	unrelated := 0
	for _, f := range rep.HostFindings {
		findings = append(findings, "- "+f.String())
	}
	for _, t := range rep.Tests {
		for _, rt := range rep.Runtimes {
			for _, f := range t.Results[rt.Name].Findings {
				if f.Kind == "mount-outside" || f.Kind == "cgroup-unattributed" {
					unrelated++
					continue
				}
				findings = append(findings, fmt.Sprintf("- %s / %s: %s", t.Name, rt.Name, f))
			}
		}
	}
	fmt.Fprintf(w, "\n### Left on the host after tests (cleaned by the harness): %d\n\n", len(findings))
	for _, f := range findings {
		fmt.Fprintln(w, f)
	}
	if unrelated > 0 {
		fmt.Fprintf(w, "\n(%d new mounts/cgroups elsewhere on the host appeared during tests but are not named after the suite's containers or directories: other activity on the host; listed in the JSON as mount-outside / cgroup-unattributed, left alone.)\n", unrelated)
	}
}

// firstError picks the runtime error that explains a failed run: the first
// error-level message of the runtime's log that the test also printed, in
// its stderr or in a failing subtest's diagnostics. Errors the test provoked
// on purpose ("state" without an id, ...) and checked with an "ok" appear in
// neither. Falls back to the first error, then to the verdict.
func firstError(r RunResult) string {
	var msgs []string
	for _, l := range r.RuntimeLog {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			msgs = append(msgs, e.Msg)
		}
	}
	var failing strings.Builder
	for _, f := range r.TAP.Failures {
		failing.WriteString(f.Detail + "\n")
	}
	for _, m := range msgs {
		quoted, _ := json.Marshal(m)
		if strings.Contains(r.Stderr, m) || strings.Contains(failing.String(), strings.Trim(string(quoted), `"`)) {
			return m
		}
	}
	if len(msgs) > 0 {
		return msgs[0]
	}
	return "(no runtime error) " + r.Reason
}

func writeFailure(w io.Writer, name string, r RunResult) {
	fmt.Fprintf(w, "\n#### %s (%s: %s)\n\n", name, testName, r.Reason)
	var b strings.Builder
	for i, f := range r.TAP.Failures {
		if i == 10 {
			fmt.Fprintf(&b, "... %d more failing subtests\n", len(r.TAP.Failures)-10)
			break
		}
		b.WriteString(f.Line + "\n")
		if f.Detail != "" {
			b.WriteString(limitLines(f.Detail, 30) + "\n")
		}
	}
	if b.Len() > 0 {
		fmt.Fprintf(w, "Failing TAP lines:\n\n```\n%s```\n\n", b.String())
	}
	if s := strings.TrimSpace(r.Stderr); s != "" {
		fmt.Fprintf(w, "Test stderr:\n\n```\n%s\n```\n\n", limitLines(s, 30))
	}
	var calls []string
	for _, c := range r.RuntimeCalls {
		if !strings.HasSuffix(c, "=> exit 0") {
			calls = append(calls, c)
		}
	}
	if len(calls) > 0 {
		fmt.Fprintf(w, "Failed runtime calls:\n\n```\n%s\n```\n\n", limitLines(strings.Join(calls, "\n"), 20))
	}
	var logs []string
	for _, l := range r.RuntimeLog {
		if !strings.Contains(l, `"level":"debug"`) && !strings.Contains(l, `"level":"info"`) {
			logs = append(logs, l)
		}
	}
	if len(logs) > 0 {
		fmt.Fprintf(w, "%s --log (warnings and errors):\n\n```\n%s\n```\n", testName, limitLines(strings.Join(logs, "\n"), 20))
	}
}

func limitLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n... (%d more lines)", len(lines)-n)
}
