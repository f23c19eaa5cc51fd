package main

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
)

// TAPResult is what one validation program printed, parsed.
type TAPResult struct {
	Planned int  `json:"planned"` // -1 when no plan line was printed
	Passed  int  `json:"passed"`
	Failed  int  `json:"failed"`
	Skipped int  `json:"skipped"` // "# SKIP" and "# TODO" subtests
	BailOut bool `json:"bail_out,omitempty"`
	// Errors counts YAML blocks with an "error" key that belong to no
	// subtest: some tests report a failure that way and plan 1..0.
	Errors   int          `json:"errors,omitempty"`
	Failures []TAPFailure `json:"failures,omitempty"`
}

// TAPFailure is one "not ok" line with the YAML block and diagnostics
// that follow it.
type TAPFailure struct {
	Number int    `json:"number"`
	Line   string `json:"line"`
	Detail string `json:"detail,omitempty"`
}

// Total is the number of subtests seen.
func (r TAPResult) Total() int { return r.Passed + r.Failed + r.Skipped }

var (
	tapTest = regexp.MustCompile(`^(not ok|ok)\b\s*(\d*)\s*(.*)$`)
	tapPlan = regexp.MustCompile(`^1\.\.(\d+)`)
	// The directive is "# SKIP" or "# TODO", case-insensitive, after an
	// unescaped "#".
	tapDirective = regexp.MustCompile(`(?i)(^|[^\\])#\s*(skip|todo)\b`)
)

// ParseTAP parses TAP version 12/13 output as tap-go prints it.
func ParseTAP(out string) TAPResult {
	res := TAPResult{Planned: -1}
	var cur *TAPFailure
	var detail strings.Builder
	inYAML := false
	orphan := false   // the YAML block being read belongs to no subtest
	lastTest := false // a subtest line came since the last header/plan
	var orphanText strings.Builder
	flush := func() {
		if cur != nil {
			cur.Detail = strings.TrimRight(detail.String(), "\n")
			res.Failures = append(res.Failures, *cur)
			cur = nil
		}
		detail.Reset()
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if inYAML {
			if cur != nil {
				detail.WriteString(line + "\n")
			}
			if orphan {
				orphanText.WriteString(line + "\n")
			}
			if trimmed == "..." {
				inYAML = false
				if orphan && strings.Contains(orphanText.String(), `"error"`) {
					res.Errors++
					res.Failures = append(res.Failures, TAPFailure{Line: "(error reported outside any subtest)", Detail: strings.TrimRight(orphanText.String(), "\n")})
				}
				orphan = false
				orphanText.Reset()
			}
			continue
		}
		if strings.HasPrefix(line, " ") && trimmed == "---" {
			inYAML = true
			orphan = !lastTest && cur == nil
			if cur != nil {
				detail.WriteString(line + "\n")
			}
			if orphan {
				orphanText.WriteString(line + "\n")
			}
			continue
		}
		if strings.HasPrefix(line, "TAP version") {
			flush()
			lastTest = false
			continue
		}
		if m := tapTest.FindStringSubmatch(line); m != nil {
			flush()
			lastTest = true
			n++
			num := n
			if m[2] != "" {
				if v, err := strconv.Atoi(m[2]); err == nil {
					num = v
					n = v
				}
			}
			directive := tapDirective.FindStringSubmatch(m[3])
			switch {
			case directive != nil:
				res.Skipped++
			case m[1] == "ok":
				res.Passed++
			default:
				res.Failed++
				cur = &TAPFailure{Number: num, Line: line}
			}
			continue
		}
		if m := tapPlan.FindStringSubmatch(line); m != nil {
			flush()
			v, _ := strconv.Atoi(m[1])
			// Some programs print two TAP streams (two headers and
			// plans): add the plans up.
			if res.Planned < 0 {
				res.Planned = 0
			}
			res.Planned += v
			lastTest = false
			continue
		}
		if strings.HasPrefix(line, "Bail out!") {
			flush()
			res.BailOut = true
			continue
		}
		if strings.HasPrefix(trimmed, "#") && cur != nil {
			detail.WriteString(line + "\n")
		}
	}
	flush()
	return res
}
