package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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
	out, err := exec.Command("nft", "list", "table", "ip", name).CombinedOutput()
	return string(out), err == nil
}

func TestAddRemove(t *testing.T) {
	nstest.NeedRoot(t)
	tbl := testTable(t)
	a := endpoint(t, "a", "10.234.99.2", "18080:80/tcp,127.0.0.1:15353:53/udp")
	b := endpoint(t, "b", "10.234.99.3", "")
	if err := tbl.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Add(a); err != nil { // a retried create
		t.Fatalf("second Add: %v", err)
	}
	if err := tbl.Add(b); err != nil {
		t.Fatal(err)
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

	if err := tbl.Remove("test/a"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := tbl.Keys(); len(keys) != 2 || keys["test/b"] != 1 || keys["bridge:hntbr0"] != 3 {
		t.Errorf("after removing test/a: %v", keys)
	}
	if err := tbl.Remove("test/a"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := tbl.Remove("test/b"); err != nil {
		t.Fatal(err)
	}
	if text, ok := listTable(t, tbl.Name); ok {
		t.Errorf("table left after its last rule was removed:\n%s", text)
	}
	if err := tbl.Remove("test/b"); err != nil {
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
	if err := tbl.Add(endpoint(t, "a", "10.234.99.2", "127.0.0.1:18081:80")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Remove("test/a") })
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
		err := tbl.Add(ep)
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("publish %s: %v, want %v", tc.ports, err, tc.wantErr)
		}
		if err == nil {
			if err := tbl.Remove(ep.Key); err != nil {
				t.Fatal(err)
			}
		} else if keys, _ := tbl.Keys(); keys["test/b"] != 0 {
			t.Errorf("publish %s failed but left rules: %v", tc.ports, keys)
		}
	}
	err := tbl.Add(endpoint(t, "b", "10.234.99.3", "18081:80"))
	if err == nil || !strings.Contains(err.Error(), "host port 18081/tcp is already published by container test/a") {
		t.Errorf("conflict error = %v", err)
	}
}
