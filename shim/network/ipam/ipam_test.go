package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
)

var (
	subnet  = netip.MustParsePrefix("10.234.7.0/24")
	gateway = netip.MustParseAddr("10.234.7.1")
)

func newAllocator(t testing.TB, dir string) *Allocator {
	t.Helper()
	a, err := New(dir, subnet, gateway)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Child processes of TestAllocateProcesses allocate here and print what
// they got.
func TestMain(m *testing.M) {
	if dir := os.Getenv("IPAM_TEST_CHILD_DIR"); dir != "" {
		a, err := New(dir, subnet, gateway)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		n, _ := strconv.Atoi(os.Getenv("IPAM_TEST_CHILD_N"))
		for i := range n {
			addr, _, err := a.Allocate(fmt.Sprintf("proc%d/c%d", os.Getpid(), i))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(addr)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAllocateSequential(t *testing.T) {
	a := newAllocator(t, t.TempDir())
	want := []string{"10.234.7.2", "10.234.7.3", "10.234.7.4"}
	for i, w := range want {
		got, _, err := a.Allocate(fmt.Sprintf("ns/c%d", i))
		if err != nil || got.String() != w {
			t.Fatalf("Allocate #%d = %v, %v; want %s", i, got, err, w)
		}
	}
	// Idempotent for a key: a retried create gets its own address back.
	if got, leased, err := a.Allocate("ns/c1"); err != nil || got.String() != "10.234.7.3" || leased {
		t.Errorf("Allocate again = %v, %v, %v; want the key's lease 10.234.7.3, not a new one", got, leased, err)
	}
}

func TestReleaseAndReuse(t *testing.T) {
	a := newAllocator(t, t.TempDir())
	first, _, _ := a.Allocate("ns/a")
	if _, _, err := a.Allocate("ns/b"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("ns/a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("ns/a"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	leases, _ := a.Leases()
	if len(leases) != 1 || leases[first] != "" {
		t.Fatalf("leases after release = %v", leases)
	}
	// Next-fit: the freed address is not handed out again at once.
	if got, _, _ := a.Allocate("ns/c"); got == first {
		t.Errorf("released %s was reused immediately", got)
	}
}

func TestFullRange(t *testing.T) {
	small := netip.MustParsePrefix("10.234.8.0/29") // .1 gateway, .2-.6, .7 broadcast
	a, err := New(t.TempDir(), small, netip.MustParseAddr("10.234.8.1"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		addr, _, err := a.Allocate(fmt.Sprintf("ns/c%d", i))
		if err != nil {
			t.Fatalf("Allocate #%d: %v", i, err)
		}
		seen[addr] = true
	}
	for _, reserved := range []string{"10.234.8.0", "10.234.8.1", "10.234.8.7"} {
		if seen[netip.MustParseAddr(reserved)] {
			t.Errorf("reserved address %s was leased", reserved)
		}
	}
	_, _, err = a.Allocate("ns/full")
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "10.234.8.0/29") {
		t.Fatalf("Allocate on a full subnet: %v; want resource exhausted naming the subnet", err)
	}
	if err := a.Release("ns/c3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Allocate("ns/full"); err != nil {
		t.Errorf("Allocate after a release: %v", err)
	}
}

func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	first, _, _ := newAllocator(t, dir).Allocate("ns/a")
	b := newAllocator(t, dir) // as a new shim would
	if got, _, _ := b.Allocate("ns/a"); got != first {
		t.Errorf("after restart ns/a got %s, want its lease %s", got, first)
	}
	if got, _, _ := b.Allocate("ns/b"); got == first {
		t.Errorf("after restart ns/b got ns/a's %s", got)
	}
}

func TestStaleBoot(t *testing.T) {
	dir := t.TempDir()
	a := newAllocator(t, dir)
	if _, _, err := a.Allocate("ns/a"); err != nil {
		t.Fatal(err)
	}
	a.bootID = "another boot"
	if leases, _ := a.Leases(); len(leases) != 0 {
		t.Errorf("leases of an earlier boot survived: %v", leases)
	}
}

func TestAllocateConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 100
	addrs := make([]netip.Addr, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// An allocator each, as separate shims would have.
			a := newAllocator(t, dir)
			addr, _, err := a.Allocate(fmt.Sprintf("ns/c%d", i))
			if err != nil {
				t.Error(err)
			}
			addrs[i] = addr
		})
	}
	wg.Wait()
	checkDistinct(t, addrs)
}

func TestAllocateProcesses(t *testing.T) {
	dir := t.TempDir()
	const procs, each = 8, 25
	cmds := make([]*exec.Cmd, procs)
	outs := make([]strings.Builder, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "IPAM_TEST_CHILD_DIR="+dir, "IPAM_TEST_CHILD_N="+strconv.Itoa(each))
		cmd.Stdout = &outs[i]
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	var addrs []netip.Addr
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		for _, line := range strings.Fields(outs[i].String()) {
			addrs = append(addrs, netip.MustParseAddr(line))
		}
	}
	if len(addrs) != procs*each {
		t.Fatalf("children allocated %d addresses, want %d", len(addrs), procs*each)
	}
	checkDistinct(t, addrs)
	leases, err := newAllocator(t, dir).Leases()
	if err != nil || len(leases) != procs*each {
		t.Errorf("state holds %d leases (%v), want %d", len(leases), err, procs*each)
	}
}

func checkDistinct(t *testing.T, addrs []netip.Addr) {
	t.Helper()
	seen := map[netip.Addr]int{}
	for i, a := range addrs {
		if !subnet.Contains(a) || a == gateway {
			t.Errorf("allocation %d: %s is not a container address in %s", i, a, subnet)
		}
		if j, dup := seen[a]; dup {
			t.Errorf("allocations %d and %d share %s", j, i, a)
		}
		seen[a] = i
	}
}

func BenchmarkAllocateRelease(b *testing.B) {
	a := newAllocator(b, b.TempDir())
	for b.Loop() {
		if _, _, err := a.Allocate("ns/bench"); err != nil {
			b.Fatal(err)
		}
		if err := a.Release("ns/bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// IPv6 subnets lease like IPv4 ones, in a file of their own: a dual-stack
// bridge's two allocators never share leases, and one key holds one
// address in each.
func TestAllocateIPv6(t *testing.T) {
	dir := t.TempDir()
	sub6 := netip.MustParsePrefix("fd00:89:7::/126") // ::1 the gateway, ::2 one container
	a6, err := New(dir, sub6, netip.MustParseAddr("fd00:89:7::1"))
	if err != nil {
		t.Fatal(err)
	}
	a4 := newAllocator(t, dir)
	got6, leased, err := a6.Allocate("ns/c")
	if err != nil || !leased || got6.String() != "fd00:89:7::2" {
		t.Fatalf("Allocate = %v, %v, %v; want fd00:89:7::2", got6, leased, err)
	}
	if got4, _, err := a4.Allocate("ns/c"); err != nil || got4.String() != "10.234.7.2" {
		t.Fatalf("IPv4 Allocate beside it = %v, %v", got4, err)
	}
	// ::3 is the last address, never leased: the /126 is full.
	if _, _, err := a6.Allocate("ns/d"); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("Allocate in a full /126 = %v, want resource exhausted", err)
	}
	if err := a6.Release("ns/c"); err != nil {
		t.Fatal(err)
	}
	if leases, err := a6.Leases(); err != nil || len(leases) != 0 {
		t.Errorf("IPv6 leases after release = %v, %v", leases, err)
	}
	if leases, err := a4.Leases(); err != nil || len(leases) != 1 {
		t.Errorf("IPv4 leases after the IPv6 release = %v, %v; want the one", leases, err)
	}
}

func TestCheckSubnet6(t *testing.T) {
	for _, tc := range []struct{ subnet, gateway, want string }{
		{"fd00:1::/64", "fd00:1::1", ""},
		{"2001:db8::/48", "2001:db8::ffff", ""},
		{"fd00:1::/64", "fd00:1::", "gateway fd00:1:: is the subnet-router anycast address of subnet fd00:1::/64"},
		{"fd00:1::/64", "fd00:2::1", "gateway fd00:2::1 is outside subnet fd00:1::/64"},
		{"fd00:1::/127", "fd00:1::1", "subnet fd00:1::/127 is too small"},
		{"fe80::/64", "fe80::1", "subnet fe80::/64 must be a unicast IPv6 subnet"},
		{"ff02::/64", "ff02::1", "must be a unicast IPv6 subnet"},
		{"::/0", "::1", "must be a unicast IPv6 subnet"},
		{"::ffff:10.1.0.0/120", "::ffff:10.1.0.1", "is IPv4-mapped"},
	} {
		err := CheckSubnet(netip.MustParsePrefix(tc.subnet), netip.MustParseAddr(tc.gateway))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckSubnet(%s, %s) = %v, want %q", tc.subnet, tc.gateway, err, tc.want)
		}
	}
}
