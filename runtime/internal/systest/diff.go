package systest

import (
	"fmt"
	"strings"
	"testing"
)

// CheckCalls fails the test with Diff's report when got is not want.
func CheckCalls(t testing.TB, got, want []string) {
	t.Helper()
	if d := Diff(got, want); d != "" {
		t.Error(d)
	}
}

// Diff returns "" when got and want are the same log, else both, line by
// line, marking the first line that differs.
func Diff(got, want []string) string {
	first := -1
	for i := 0; i < len(got) || i < len(want); i++ {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			first = i
			break
		}
	}
	if first < 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the calls differ from line %d:\n", first+1)
	for i := 0; i < len(got) || i < len(want); i++ {
		g, w := "", ""
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		mark := "  "
		if g != w {
			mark = "! "
		}
		fmt.Fprintf(&b, "%s%2d got  %s\n%s   want %s\n", mark, i+1, g, mark, w)
	}
	return b.String()
}
