package integration

// Issue 15: IPv6 and dual stack in the built-in bridge, and teardown by the
// nftables rules the bundle's record lists, through the real containerd.
// Every IPv6 subnet is a unique local one (fd00::/8) chosen per run; the
// only IPv6 addresses used are the bridge's, its containers' and one on a
// dummy interface the test makes.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/spec"
)

// newBridgeNet6 is a bridge network private to the test with an IPv6
// subnet of a ULA prefix of its own, and the IPv4 one unless v6only.
func newBridgeNet6(t *testing.T, v6only bool) *bridgeNet {
	t.Helper()
	b := newBridgeNet(t)
	var id [5]byte // RFC 4193's 40-bit global ID
	rand.Read(id[:])
	b.subnet6 = netip.MustParsePrefix(fmt.Sprintf("fd%02x:%02x%02x:%02x%02x:1::/64", id[0], id[1], id[2], id[3], id[4]))
	b.gateway6 = b.subnet6.Addr().Next()
	subnet := fmt.Sprintf("%q", b.subnet)
	if v6only {
		subnet = `""`
	}
	b.toml = fmt.Sprintf("[network.bridge]\nname = %q\nsubnet = %s\nsubnet6 = %q\nstate_dir = %q\n", b.name, subnet, b.subnet6, b.ipamDir)
	if err := os.WriteFile(b.config, []byte(b.toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// leased6 is leased for the IPv6 subnet.
func (b *bridgeNet) leased6(t *testing.T, id string) netip.Addr {
	t.Helper()
	return leasedIn(t, b.leasesFile6(), id)
}

func (b *bridgeNet) leasesFile6() string {
	return filepath.Join(b.ipamDir, strings.ReplaceAll(b.subnet6.String(), "/", "-")+".json")
}

// hostnetRules6 is `nft list table ip6 hostnet`, empty without the table.
func hostnetRules6(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip6", "hostnet").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// assertNothingLeft6 is assertNothingLeft for the IPv6 side too.
func (b *bridgeNet) assertNothingLeft6(t *testing.T) {
	t.Helper()
	if b.subnet.IsValid() {
		b.assertNothingLeft(t)
	}
	if data, _ := os.ReadFile(b.leasesFile6()); strings.Contains(string(data), testDaemon.Namespace) {
		t.Errorf("IPv6 leases left: %s", data)
	}
	if rules := hostnetRules6(t); strings.Contains(rules, testDaemon.Namespace) {
		t.Errorf("ip6 nftables rules left:\n%s", rules)
	}
}

// testAddr6 puts an address of the test's own on a veth pair of the host
// that it makes (this kernel may lack the dummy driver), removed when the
// test ends: a host address to publish on that is neither loopback nor
// the machine's uplink.
func testAddr6(t *testing.T, b *bridgeNet) netip.Addr {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("hnd%d", os.Getpid())}, PeerName: fmt.Sprintf("hnd%dp", os.Getpid())}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })
	// In the run's ULA prefix, outside the bridge's /64.
	a := b.subnet6.Addr().As16()
	a[7] = 2
	a[15] = 1
	addr := netip.AddrFrom16(a)
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	return addr
}

// A dual-stack container: an address of each family, default routes via
// both gateways, both in /etc/hosts; another container reaches it over
// both, and the IPv6 gateway; the host reaches it directly and through a
// port published on an IPv6 host address. Nothing is left of either
// family afterwards.
func TestBridgeDualStack(t *testing.T) {
	b := newBridgeNet6(t, false)
	hostAddr := testAddr6(t, b)
	hostPort := freeLoopbackPort(t)
	id := newID(t)
	const body = "hello over IPv6"
	b.start(t, id, fmt.Sprintf("[%s]:%d:8080", hostAddr, hostPort), httpdScript(body, 8080)...)
	a4, a6 := b.leased(t, id), b.leased6(t, id)
	if !b.subnet6.Contains(a6) || a6 == b.gateway6 {
		t.Fatalf("IPv6 lease %s, want a container address in %s", a6, b.subnet6)
	}
	getAll(t, body,
		fmt.Sprintf("http://%s/index.html", netip.AddrPortFrom(a6, 8080)),                   // host to container
		fmt.Sprintf("http://%s/index.html", netip.AddrPortFrom(hostAddr, uint16(hostPort))), // published
	)

	gw := serveLine(t, b.gateway6, "gateway6")
	script := strings.Join([]string{
		"ip -o addr show dev eth0", "ip route", "ip -6 route", "cat /etc/hosts",
		fmt.Sprintf("echo over6: $(wget -q -O- http://[%s]:8080/index.html)", a6),
		fmt.Sprintf("echo over4: $(wget -q -O- http://%s:8080/index.html)", a4),
		fmt.Sprintf("echo gw6: $(nc -w 5 %s %d)", gw.Addr(), gw.Port()),
	}, "; ")
	other := newID(t)
	out, err := b.run(t, spec.ModeBridge, other, "sh", "-c", script)
	if err != nil {
		t.Fatalf("second container: %v\n%s", err, out)
	}
	for _, want := range []string{
		"over6: " + body, "over4: " + body, "gw6: gateway6",
		"default via " + b.gateway.String(), "default via " + b.gateway6.String(),
		"inet6 " + strings.TrimSuffix(b.subnet6.Addr().String(), ":"), // an address in the /64
	} {
		if !strings.Contains(out, want) {
			t.Errorf("second container's output lacks %q:\n%s", want, out)
		}
	}
	hosts := map[string]bool{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(other, f[1]) {
			hosts[f[0]] = true
		}
	}
	if len(hosts) != 2 {
		t.Errorf("/etc/hosts names the container by %v, want an IPv4 and an IPv6 address:\n%s", hosts, out)
	}
	removeContainer(t, id)
	b.assertNothingLeft6(t)
}

// An IPv6-only bridge: the container has no IPv4 address; publishing on
// an IPv4 host IP or on ::1 is refused, saying why.
func TestBridgeIPv6Only(t *testing.T) {
	b := newBridgeNet6(t, true)
	id := newID(t)
	out, err := b.run(t, spec.ModeBridge, id, "sh", "-c", "ip -o addr show dev eth0; ip -6 route; cat /etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "inet ") {
		t.Errorf("an IPv6-only container has an IPv4 address:\n%s", out)
	}
	if !strings.Contains(out, "default via "+b.gateway6.String()) || !strings.Contains(out, "inet6 "+strings.TrimSuffix(b.subnet6.Addr().String(), ":")) {
		t.Errorf("no address in %s or no default route via %s:\n%s", b.subnet6, b.gateway6, out)
	}
	for _, tc := range []struct{ ports, want string }{
		{"127.0.0.1:8080:80", "cannot publish port 127.0.0.1:8080:80/tcp: the container has no IPv4 address (the bridge has no IPv4 subnet)"},
		{"[::1]:8080:80", "cannot publish port [::1]:8080:80/tcp: connections to ::1 cannot be forwarded into a container (IPv6 has no route_localnet)"},
	} {
		id := newID(t)
		_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs(b.args(spec.ModeBridge, tc.ports), id, "true")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "invalid argument") {
			t.Errorf("publish %s: %v; want an invalid argument containing %q", tc.ports, err, tc.want)
		}
		removeContainer(t, id)
	}
	b.assertNothingLeft6(t)
}

// natRecord is the part of the network record that lists the container's
// nftables rules.
type natRecord struct {
	Key      string
	NATRules []struct {
		Family string
		Chain  string
		Handle uint64
	}
}

// ruleHandles maps "family chain handle" to the comment of each rule in
// the hostnet tables.
func ruleHandles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, fam := range []string{"ip", "ip6"} {
		data, err := exec.Command("nft", "-j", "list", "table", fam, "hostnet").Output()
		if err != nil {
			continue // no table
		}
		var doc struct {
			Nftables []struct {
				Rule *struct {
					Chain   string
					Handle  uint64
					Comment string
				}
			}
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		for _, e := range doc.Nftables {
			if e.Rule != nil {
				out[fmt.Sprintf("%s %s %d", fam, e.Rule.Chain, e.Rule.Handle)] = e.Rule.Comment
			}
		}
	}
	return out
}

func readNATRecord(t *testing.T, id string) natRecord {
	t.Helper()
	var rec natRecord
	data, err := os.ReadFile(filepath.Join(testDaemon.TaskDir(id), "hostnet-network.json"))
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.NATRules) == 0 {
		t.Fatalf("the network record of %s lists no nftables rules: %s", id, data)
	}
	return rec
}

// Issue 15, item 2: the record lists the container's rules by handle; the
// delete after its shim was SIGKILLed removes exactly those, of both
// families, and leaves another container's rules, lease and publication.
func TestBridgeTeardownAfterShimKill(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("bridge mode is hostnet's")
	}
	b := newBridgeNet6(t, false)
	victim, survivor := newID(t), newID(t)
	const body = "still here"
	port := freeLoopbackPort(t)
	bg := b.start(t, victim, fmt.Sprintf("127.0.0.1:%d:8080", freeLoopbackPort(t)), "sleep", "1000")
	b.start(t, survivor, fmt.Sprintf("127.0.0.1:%d:8080", port), httpdScript(body, 8080)...)
	vrec, srec := readNATRecord(t, victim), readNATRecord(t, survivor)
	handles := ruleHandles(t)
	families := map[string]bool{}
	for _, r := range vrec.NATRules {
		k := fmt.Sprintf("%s %s %d", r.Family, r.Chain, r.Handle)
		if c := handles[k]; !strings.HasPrefix(c, vrec.Key+" ") {
			t.Fatalf("recorded rule %s of %s is %q in the ruleset", k, vrec.Key, c)
		}
		families[r.Family] = true
	}
	if !families["ip"] || !families["ip6"] {
		t.Errorf("the record lists rules of families %v, want ip and ip6", families)
	}

	shims, err := testDaemon.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	shimPid := shims[victim]
	if shimPid == 0 || shimPid == shims[survivor] {
		t.Fatalf("no shim of its own for %s: %v", victim, shims)
	}
	// containerd runs `shim delete` for a dead shim, then reports the
	// exit: the teardown is done when the event comes.
	exitCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	envs, errs := testClient.Subscribe(exitCtx, fmt.Sprintf(`namespace==%q,topic=="/tasks/exit"`, testDaemon.Namespace))
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !daemon.WaitGone(shimPid, 10*time.Second) {
		t.Fatalf("shim %d survived SIGKILL", shimPid)
	}
	for exited := false; !exited; {
		select {
		case env := <-envs:
			e, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				t.Fatal(err)
			}
			te, ok := e.(*eventstypes.TaskExit)
			exited = ok && te.ContainerID == victim
		case err := <-errs:
			t.Fatalf("subscription: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatalf("no /tasks/exit event for %s within 60s of its shim's death", victim)
		}
	}
	<-bg.done
	removeContainer(t, victim)

	after := ruleHandles(t)
	for k, c := range after {
		if strings.HasPrefix(c, vrec.Key+" ") {
			t.Errorf("rule %s (%q) of %s left after its delete", k, c, vrec.Key)
		}
	}
	for _, r := range srec.NATRules {
		k := fmt.Sprintf("%s %s %d", r.Family, r.Chain, r.Handle)
		if c := after[k]; !strings.HasPrefix(c, srec.Key+" ") {
			t.Errorf("rule %s of %s is %q after the other container's delete", k, srec.Key, c)
		}
	}
	if data, _ := os.ReadFile(b.leasesFile6()); strings.Contains(string(data), testDaemon.Namespace+"/"+victim+"@") {
		t.Errorf("%s left an IPv6 lease: %s", victim, data)
	}
	b.assertNoTrace(t, victim)
	b.leased6(t, survivor)
	hc := &http.Client{Timeout: 2 * time.Second}
	if got, err := getRetry(hc, fmt.Sprintf("http://127.0.0.1:%d/index.html", port)); err != nil || got != body {
		t.Errorf("the other container's publication after the delete: %q, %v", got, err)
	}
}
