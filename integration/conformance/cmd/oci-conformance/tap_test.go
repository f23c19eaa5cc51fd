package main

import (
	"strings"
	"testing"
	"time"
)

const sampleTAP = `TAP version 13
ok 1 - root filesystem
ok 2 # skip linux.seccomp not checked
not ok 3 - hostname
  ---
  {
    "expected": "a",
    "actual": "b"
  }
  ...
# expect: 1, actual: 2
ok 4 - pids limit # SKIP not supported
not ok 5 - needs work # TODO later
1..5
`

func TestParseTAP(t *testing.T) {
	r := ParseTAP(sampleTAP)
	if r.Planned != 5 || r.Passed != 1 || r.Failed != 1 || r.Skipped != 3 {
		t.Fatalf("got %+v", r)
	}
	if len(r.Failures) != 1 || r.Failures[0].Number != 3 {
		t.Fatalf("failures %+v", r.Failures)
	}
	if d := r.Failures[0].Detail; !strings.Contains(d, `"actual": "b"`) || !strings.Contains(d, "# expect: 1, actual: 2") {
		t.Fatalf("detail %q", d)
	}
}

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		name string
		r    RunResult
		want string
	}{
		{"pass", RunResult{TAP: ParseTAP("ok 1\nok 2\n1..2\n")}, Pass},
		{"skip suite", RunResult{TAP: ParseTAP("1..1\nok 1 # skip no hugetlb\n")}, Skip},
		{"not ok", RunResult{TAP: ParseTAP("ok 1\nnot ok 2\n1..2\n")}, Fail},
		{"fatal before plan", RunResult{Exit: 1, TAP: ParseTAP("ok 1\n")}, Fail},
		{"no plan", RunResult{TAP: ParseTAP("ok 1\n")}, Fail},
		{"short", RunResult{TAP: ParseTAP("1..3\nok 1\n")}, Fail},
		{"timeout", RunResult{TimedOut: true, TAP: ParseTAP("ok 1\n1..1\n")}, Fail},
		{"empty", RunResult{TAP: ParseTAP("")}, Fail},
		{"hook test success", RunResult{TAP: ParseTAP("TAP version 13\n1..0\n")}, Pass},
		{"two streams", RunResult{TAP: ParseTAP("TAP version 13\n1..2\nok 1\nok 2\nTAP version 13\n1..0\n")}, Pass},
		{"error without subtests", RunResult{TAP: ParseTAP("TAP version 13\n  ---\n  {\n    \"error\": \"hooks MUST\"\n  }\n  ...\n1..0\n")}, Fail},
		{"yaml after ok", RunResult{TAP: ParseTAP("TAP version 13\nok 1 - x\n  ---\n  {\n    \"error\": \"exit status 1\"\n  }\n  ...\n1..1\n")}, Pass},
		{"crash", RunResult{Exit: 2, TAP: ParseTAP("")}, Fail},
	} {
		if got, why := verdict(c.r, time.Minute); got != c.want {
			t.Errorf("%s: verdict %s (%s), want %s", c.name, got, why, c.want)
		}
	}
}

func TestRegressionGate(t *testing.T) {
	pass := RunResult{Verdict: Pass}
	fail := RunResult{Verdict: Fail}
	skip := RunResult{Verdict: Skip}
	rep := &Report{
		Runtimes: []Runtime{{Name: refName}, {Name: testName}},
		Tests: []TestResult{
			{Name: "both", Results: map[string]RunResult{refName: pass, testName: pass}},
			{Name: "regressed", Results: map[string]RunResult{refName: pass, testName: fail}},
			{Name: "skipped", Results: map[string]RunResult{refName: pass, testName: skip}},
			{Name: "runc-fails", Results: map[string]RunResult{refName: fail, testName: fail}},
			{Name: "better", Results: map[string]RunResult{refName: fail, testName: pass}},
		},
	}
	rep.finish()
	if got := strings.Join(rep.Regressions, ","); got != "regressed,skipped" {
		t.Errorf("regressions %q", got)
	}
	if got := strings.Join(rep.Improvements, ","); got != "better" {
		t.Errorf("improvements %q", got)
	}
}

func TestContainerIDs(t *testing.T) {
	calls := []string{
		"create --bundle /b => exit 1",
		"create --bundle /b 1234-abcd => exit 0",
		"state 1234-abcd => exit 0",
		"create --pid-file /p --bundle /b 1234-abcd => exit 1",
	}
	if got := strings.Join(containerIDs(calls), ","); got != "1234-abcd" {
		t.Errorf("ids %q", got)
	}
	if !attributedCgroup("/pids/cgrouptest", nil) || !attributedCgroup("/memory/user.slice/testdir/cgrouptest/container", nil) ||
		!attributedCgroup("/cpu/default/1234-abcd", []string{"1234-abcd"}) || attributedCgroup("/cpu/default/other", []string{"1234-abcd"}) {
		t.Error("attributedCgroup")
	}
}
