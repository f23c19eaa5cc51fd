package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/hostnet-dev/hostnet/spec"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
)

// testTable is unique to this test process and deleted with it.
func testTable(t *testing.T) Table {
	t.Helper()
	tbl := Table{Name: fmt.Sprintf("hnt%d", os.Getpid()), LockDir: t.TempDir()}
	t.Cleanup(func() {
		// Only if a failed test left it.
		exec.Command("nft", "delete", "table", "ip", tbl.Name).Run()
		exec.Command("nft", "delete", "table", "ip6", tbl.Name).Run()
	})
	return tbl
}

func ports(t *testing.T, s string) []spec.PortMapping {
	t.Helper()
	p, err := spec.ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func endpoint(t *testing.T, id, addr, published string) Endpoint {
	return Endpoint{
		Key:    "test/" + id,
		Bridge: "hntbr0",
		Subnet: netip.MustParsePrefix("10.234.99.0/24"),
		Addr:   netip.MustParseAddr(addr),
		Ports:  ports(t, published),
	}
}

func listTable(t *testing.T, name string) (string, bool) {
	t.Helper()
	return listTableOf(t, "ip", name)
}

func listTableOf(t *testing.T, family, name string) (string, bool) {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", family, name).CombinedOutput()
	return string(out), err == nil
}

func TestAddRemove(t *testing.T) {
	nstest.NeedRoot(t)
	tbl := testTable(t)
	a := endpoint(t, "a", "10.234.99.2", "18080:80/tcp,127.0.0.1:15353:53/udp")
	b := endpoint(t, "b", "10.234.99.3", "")
	if _, err := tbl.Add(a); err != nil {
		t.Fatal(err)
	}
	rulesA, err := tbl.Add(a) // a retried create
	if err != nil {
		t.Fatalf("second Add: %v", err)
	}
	rulesB, err := tbl.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rulesA) != 6 || len(rulesB) != 1 {
		t.Errorf("Add returned %v for test/a and %v for test/b, want 6 and 1 rules", rulesA, rulesB)
	}
	keys, err := tbl.Keys()
	if err != nil {
		t.Fatal(err)
	}
	// a: masquerade, 2 ports x output, 1 x prerouting (none for the
	// loopback one), loopback, hairpin; the bridge: 3 guard rules, once.
	if keys["test/a"] != 6 || keys["test/b"] != 1 || keys["bridge:hntbr0"] != 3 || len(keys) != 3 {
		t.Errorf("rules per owner = %v, want test/a 6, test/b 1 and bridge:hntbr0 3", keys)
	}
	text, ok := listTable(t, tbl.Name)
	if !ok {
		t.Fatalf("table ip %s missing: %s", tbl.Name, text)
	}
	t.Logf("nft list table ip %s:\n%s", tbl.Name, text)
	for _, want := range []string{
		`ip saddr 10.234.99.2 oifname != "hntbr0" masquerade comment "test/a masquerade"`,
		`fib daddr type local tcp dport 18080 dnat to 10.234.99.2:80 comment "test/a publish 18080:80/tcp"`,
		`ip daddr 127.0.0.1 udp dport 15353 dnat to 10.234.99.2:53`,
		`ip saddr 127.0.0.0/8 masquerade comment "test/a masquerade-loopback"`,
		`ip saddr 10.234.99.0/24 masquerade comment "test/a masquerade-hairpin"`,
		`iifname "hntbr0" ip saddr 127.0.0.0/8 drop comment "bridge:hntbr0 guard-loopback-source"`,
		`iifname "hntbr0" ip daddr 127.0.0.0/8 ct status dnat accept comment "bridge:hntbr0 guard-loopback-dnat"`,
		`iifname "hntbr0" ip daddr 127.0.0.0/8 drop comment "bridge:hntbr0 guard-loopback"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("ruleset lacks %q", want)
		}
	}
	// Only the host's own connections may reach a port published on a
	// loopback address: no prerouting rule takes packets from the link.
	if pre := chainText(text, "prerouting"); strings.Contains(pre, "15353") {
		t.Errorf("a port published on 127.0.0.1 has a prerouting rule:\n%s", pre)
	}
	published, err := tbl.Published()
	if err != nil {
		t.Fatal(err)
	}
	if len(published) != 2 || published[0].Owner != "test/a" || published[0].Mapping.String() != "18080:80/tcp" ||
		published[1].Mapping.String() != "127.0.0.1:15353:53/udp" {
		t.Errorf("Published() = %v", published)
	}

	if err := tbl.Remove("test/a", rulesA); err != nil {
		t.Fatal(err)
	}
	if keys, _ := tbl.Keys(); len(keys) != 2 || keys["test/b"] != 1 || keys["bridge:hntbr0"] != 3 {
		t.Errorf("after removing test/a: %v", keys)
	}
	if err := tbl.Remove("test/a", rulesA); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := tbl.Remove("test/b", rulesB); err != nil {
		t.Fatal(err)
	}
	if text, ok := listTable(t, tbl.Name); ok {
		t.Errorf("table left after its last rule was removed:\n%s", text)
	}
	if err := tbl.Remove("test/b", rulesB); err != nil {
		t.Errorf("Remove without a table: %v", err)
	}
}

// chainText is one chain of `nft list table` output.
func chainText(table, name string) string {
	_, rest, _ := strings.Cut(table, "chain "+name+" {")
	chain, _, _ := strings.Cut(rest, "}")
	return chain
}

func TestPortConflicts(t *testing.T) {
	nstest.NeedRoot(t)
	tbl := testTable(t)
	if _, err := tbl.Add(endpoint(t, "a", "10.234.99.2", "127.0.0.1:18081:80")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Remove("test/a", nil) })
	for _, tc := range []struct {
		ports   string
		wantErr error
	}{
		{"18081:80", errdefs.ErrAlreadyExists},             // any address covers 127.0.0.1
		{"127.0.0.1:18081:8080", errdefs.ErrAlreadyExists}, // same address
		{"127.0.0.2:18081:80", nil},
		{"18081:80/udp", nil},
		{"18082:80,0.0.0.0:18082:81", errdefs.ErrInvalidArgument}, // twice in one request
		{"[::1]:18083:80", errdefs.ErrInvalidArgument},
	} {
		ep := endpoint(t, "b", "10.234.99.3", tc.ports)
		rules, err := tbl.Add(ep)
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("publish %s: %v, want %v", tc.ports, err, tc.wantErr)
		}
		if err == nil {
			if err := tbl.Remove(ep.Key, rules); err != nil {
				t.Fatal(err)
			}
		} else if keys, _ := tbl.Keys(); keys["test/b"] != 0 {
			t.Errorf("publish %s failed but left rules: %v", tc.ports, keys)
		}
	}
	_, err := tbl.Add(endpoint(t, "b", "10.234.99.3", "18081:80"))
	if err == nil || !strings.Contains(err.Error(), "host port 18081/tcp is already published by container test/a") {
		t.Errorf("conflict error = %v", err)
	}
}

// Issue 15: a dual-stack container gets rules in both tables: masquerade
// (NAT66 unless routed), publications without a host IP in each family,
// ones with a host IP in its family only, and never a DNAT of ::1.
func TestAddRemoveDualStack(t *testing.T) {
	nstest.NeedRoot(t)
	tbl := testTable(t)
	a := endpoint(t, "a", "10.234.99.2", "18090:80,[fd00:99::1]:18091:81/udp,127.0.0.1:18092:82,[::]:18093:83")
	a.Subnet6, a.Addr6, a.Masquerade6 = netip.MustParsePrefix("fd00:234:99::/64"), netip.MustParseAddr("fd00:234:99::2"), true
	b := endpoint(t, "b", "10.234.99.3", "")
	b.Subnet6, b.Addr6 = a.Subnet6, netip.MustParseAddr("fd00:234:99::3") // routed
	rulesA, err := tbl.Add(a)
	if err != nil {
		t.Fatal(err)
	}
	rulesB, err := tbl.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	text6, ok := listTableOf(t, "ip6", tbl.Name)
	if !ok {
		t.Fatalf("table ip6 %s missing: %s", tbl.Name, text6)
	}
	text4, _ := listTable(t, tbl.Name)
	t.Logf("nft list table ip6 %s:\n%s", tbl.Name, text6)
	for _, want := range []string{
		`ip6 saddr fd00:234:99::2 oifname != "hntbr0" masquerade comment "test/a masquerade"`,
		`fib daddr type local ip6 daddr != ::1 tcp dport 18090 dnat to [fd00:234:99::2]:80 comment "test/a publish 18090:80/tcp"`,
		`ip6 daddr fd00:99::1 udp dport 18091 dnat to [fd00:234:99::2]:81 comment "test/a publish [fd00:99::1]:18091:81/udp"`,
		`fib daddr type local ip6 daddr != ::1 tcp dport 18093 dnat to [fd00:234:99::2]:83`,
		`oifname "hntbr0" ip6 daddr fd00:234:99::2 ct status dnat ip6 saddr fd00:234:99::/64 masquerade comment "test/a masquerade-hairpin"`,
	} {
		if !strings.Contains(text6, want) {
			t.Errorf("ip6 table lacks %q", want)
		}
	}
	for _, absent := range []string{"18092", "fd00:234:99::3", "guard", "127.0.0.0/8"} {
		if strings.Contains(text6, absent) {
			t.Errorf("ip6 table has %q", absent)
		}
	}
	for _, absent := range []string{"18091", "18093", "fd00"} {
		if strings.Contains(text4, absent) {
			t.Errorf("ip table has %q:\n%s", absent, text4)
		}
	}
	if !strings.Contains(text4, `ip saddr 10.234.99.3 oifname != "hntbr0" masquerade`) {
		t.Errorf("IPv4 of a routed IPv6 container is not masqueraded:\n%s", text4)
	}
	published, err := tbl.Published()
	if err != nil || len(published) != 4 {
		t.Errorf("Published() = %v, %v; want the 4 mappings once each", published, err)
	}
	fams := map[string]int{}
	for _, r := range rulesA {
		fams[r.Family]++
	}
	// ip: masquerade, 18090 x2, 18092 output, loopback, hairpin;
	// ip6: masquerade, 18090 x2, 18091 x2, 18093 x2, hairpin.
	if fams["ip"] != 6 || fams["ip6"] != 8 {
		t.Errorf("rules of test/a per family = %v, want ip 6 and ip6 8", fams)
	}
	if err := tbl.Remove("test/a", rulesA); err != nil {
		t.Fatal(err)
	}
	if keys, _ := tbl.Keys(); len(keys) != 2 || keys["test/b"] != 1 {
		t.Errorf("after removing test/a: %v, want test/b's one rule and the guard", keys)
	}
	if err := tbl.Remove("test/b", rulesB); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"ip", "ip6"} {
		if text, ok := listTableOf(t, fam, tbl.Name); ok {
			t.Errorf("table %s left after its last rule was removed:\n%s", fam, text)
		}
	}
}

// Issue 15, item 2: Remove deletes the rules the record lists, by handle,
// and leaves another container's alone, also when the table was made anew
// since and its handles now name that container's rules. A record without
// rules (an older shim's) is removed by the comments.
func TestRemoveByRecord(t *testing.T) {
	nstest.NeedRoot(t)
	tbl := testTable(t)
	a := endpoint(t, "a", "10.234.99.2", "18094:80")
	b := endpoint(t, "b", "10.234.99.3", "18095:80") // the same shape: the same handles in a new table
	rulesA, err := tbl.Add(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Remove(a.Key, rulesA); err != nil {
		t.Fatal(err)
	}
	if _, ok := listTable(t, tbl.Name); ok {
		t.Fatal("table left")
	}
	rulesB, err := tbl.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	reused := false
	for _, r := range rulesB {
		reused = reused || slices.Contains(rulesA, r)
	}
	if !reused {
		t.Fatalf("the new table's handles %v share none with the old one's %v: nothing is tested", rulesB, rulesA)
	}
	// test/a's stale record, removed again (a retried delete).
	if err := tbl.Remove(a.Key, rulesA); err != nil {
		t.Fatal(err)
	}
	if keys, _ := tbl.Keys(); keys["test/b"] != len(rulesB) {
		t.Errorf("removing test/a's stale record took test/b's rules: %v", keys)
	}
	// A record without rules: by the comments, and only test/c's.
	c := endpoint(t, "c", "10.234.99.4", "")
	if _, err := tbl.Add(c); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Remove(c.Key, nil); err != nil {
		t.Fatal(err)
	}
	if keys, _ := tbl.Keys(); keys["test/c"] != 0 || keys["test/b"] != len(rulesB) {
		t.Errorf("after removing test/c by its comments: %v", keys)
	}
	if err := tbl.Remove(b.Key, rulesB); err != nil {
		t.Fatal(err)
	}
}

func TestCheckPortsIPv6(t *testing.T) {
	for _, tc := range []struct {
		ports      string
		has4, has6 bool
		want       string
	}{
		{"[::1]:8080:80", true, true, "cannot publish port [::1]:8080:80/tcp: connections to ::1 cannot be forwarded into a container"},
		{"127.0.0.1:8080:80", false, true, "cannot publish port 127.0.0.1:8080:80/tcp: the container has no IPv4 address"},
		{"0.0.0.0:8080:80", false, true, "the container has no IPv4 address"},
		{"[fd00::1]:8080:80", true, false, "cannot publish port [fd00::1]:8080:80/tcp: the container has no IPv6 address"},
		{"8080:80", false, true, ""},
		{"8080:80", true, false, ""},
		{"[::]:8080:80,0.0.0.0:8080:80", true, true, ""},
		{"[::]:8080:80,8080:81", true, true, "publish the same host port"},
	} {
		p := ports(t, tc.ports)
		err := CheckPorts(p)
		if err == nil {
			err = CheckPortFamilies(p, tc.has4, tc.has6)
		}
		if (tc.want == "") != (err == nil) || err != nil && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInvalidArgument)) {
			t.Errorf("ports %s (IPv4 %v, IPv6 %v): %v, want %q", tc.ports, tc.has4, tc.has6, err, tc.want)
		}
	}
}
