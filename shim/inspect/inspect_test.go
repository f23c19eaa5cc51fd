package inspect

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseHexAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
	}{
		{"0100007F:1F90", "127.0.0.1", 8080},
		{"00000000:0035", "0.0.0.0", 53},
		{"00000000000000000000000001000000:0016", "::1", 22},
		{"00000000000000000000000000000000:01BB", "::", 443},
		// An IPv4-mapped address in tcp6 is the IPv4 one.
		{"0000000000000000FFFF00000100007F:0050", "127.0.0.1", 80},
	} {
		addr, port, err := parseHexAddr(tc.in)
		if err != nil || addr != netip.MustParseAddr(tc.addr) || port != tc.port {
			t.Errorf("parseHexAddr(%q) = %s, %d, %v; want %s, %d", tc.in, addr, port, err, tc.addr, tc.port)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:XYZ", "01007F:0050", "zz00007F:0050"} {
		if _, _, err := parseHexAddr(bad); err == nil {
			t.Errorf("parseHexAddr(%q): no error", bad)
		}
	}
}

// TestListeningSockets: TCP listeners and unconnected UDP sockets are
// listed; established TCP and connected UDP sockets are not.
func TestListeningSockets(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "self", "net")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	files := map[string]string{
		"tcp": header +
			"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n" +
			"   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 112 1 0 100 0 0 10 0\n",
		"udp": header +
			"   2: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 113 2 0 0\n" +
			"   3: 0100007F:D431 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 114 2 0 0\n",
		"udp6": header +
			"   4: 00000000000000000000000001000000:0202 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 115 2 0 0\n",
		// tcp6 missing: a host without IPv6.
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := listeningSockets(proc)
	if err != nil {
		t.Fatal(err)
	}
	want := []socket{
		{"tcp", netip.MustParseAddr("127.0.0.1"), 8080, "111"},
		{"udp", netip.MustParseAddr("0.0.0.0"), 53, "113"},
		{"udp", netip.MustParseAddr("::1"), 514, "115"},
	}
	if len(got) != len(want) {
		t.Fatalf("listeningSockets = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("socket %d = %v, want %v", i, got[i], want[i])
		}
	}
}

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
