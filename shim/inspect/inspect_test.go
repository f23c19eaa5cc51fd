package inspect

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTableWidth: a table wider than the terminal gives way in its
// shrinkable columns, widest first, and no further than minShrunk; piped
// (width 0), lines are whole.
func TestTableWidth(t *testing.T) {
	tbl := &table{header: []string{"A", "WHY", "NOTES"}, shrink: []int{2, 1}}
	tbl.add("x", "annotation hostnet.containerd.io/network", "")
	var b strings.Builder
	if err := tbl.write(&b, 0); err != nil {
		t.Fatal(err)
	}
	if want := "A  WHY                                       NOTES\nx  annotation hostnet.containerd.io/network  -\n"; b.String() != want {
		t.Errorf("piped:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if err := tbl.write(&b, 30); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if n := len([]rune(line)); n > 30 {
			t.Errorf("line %q is %d wide, want at most 30", line, n)
		}
	}
	if !strings.Contains(b.String(), "x  annotation hostnet.…  -\n") {
		t.Errorf("WHY not cut with an ellipsis:\n%s", b.String())
	}
	b.Reset()
	// Narrower than the columns can go: cut to minShrunk, no further.
	if err := tbl.write(&b, 5); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "x  annotat…  -") {
		t.Errorf("at width 5:\n%s", b.String())
	}
}

func TestOverlap(t *testing.T) {
	lo, any4, any6, other := netip.MustParseAddr("127.0.0.1"), netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("127.0.0.2")
	for _, tc := range []struct {
		a, b netip.Addr
		want bool
	}{
		{lo, lo, true}, {lo, any4, true}, {any6, lo, true}, {lo, other, false},
	} {
		if got := overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("overlap(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestContainersStateDir: a state directory that does not exist is an
// error naming it; one where no task ever ran lists nothing.
func TestContainersStateDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := Containers(Options{State: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Containers(%s) = %v, want an error naming it", missing, err)
	}
	if got, err := Containers(Options{State: t.TempDir()}); err != nil || len(got) != 0 {
		t.Errorf("Containers(empty) = %v, %v; want none", got, err)
	}
}

func TestUsage(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, 0},
		{[]string{"ps", "-h"}, 0},
		{[]string{"help"}, 0},
		{nil, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{"ps", "extra"}, 2},
		{[]string{"ps", "--bogus"}, 2},
		{[]string{"--state", filepath.Join(t.TempDir(), "nope"), "ps"}, 1},
	} {
		if got := Main(tc.args, devnull, devnull); got != tc.want {
			t.Errorf("hostnet %q: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}
