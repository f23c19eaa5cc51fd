package fwd

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
)

func TestParseChain(t *testing.T) {
	const text = `-P FORWARD DROP
-A FORWARD -d 10.89.0.3/32 -o hostnet0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "hostnet default/web@0a1b2c3d" -j ACCEPT
-A FORWARD -s 10.89.0.3/32 -i hostnet0 -m comment --comment "hostnet default/web@0a1b2c3d" -j ACCEPT
-A FORWARD -s 10.89.0.4/32 -i hn-test -m comment --comment "hostnet k8s.io/a b@ffffffff" -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -s 10.0.0.0/8 -m comment --comment "not hostnet's" -j ACCEPT
-A FORWARD -s 10.0.0.9/32 -i br0 -m comment --comment hostnetish -j ACCEPT
`
	got := ParseChain(text)
	want := Chain{Policy: "DROP", Rules: []Rules{
		{Key: "default/web@0a1b2c3d", Bridge: "hostnet0", Addr: netip.MustParseAddr("10.89.0.3")},
		{Key: "k8s.io/a b@ffffffff", Bridge: "hn-test", Addr: netip.MustParseAddr("10.89.0.4")},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseChain =\n%+v\nwant\n%+v", got, want)
	}
	if got := ParseChain("-P FORWARD ACCEPT\n"); got.Policy != "ACCEPT" || len(got.Rules) != 0 {
		t.Errorf("ParseChain(accept) = %+v", got)
	}
}

// TestSpecsParse: what Add inserts, ParseChain reads back as the same
// Rules.
func TestSpecsParse(t *testing.T) {
	r := Rules{Key: "ns/id@12345678", Bridge: "hostnet0", Addr: netip.MustParseAddr("10.89.0.2")}
	text := "-P FORWARD DROP\n"
	for _, spec := range r.specs() {
		line := "-A FORWARD"
		for _, a := range spec {
			if a == commentPrefix+r.Key {
				a = `"` + a + `"`
			}
			line += " " + a
		}
		text += line + "\n"
	}
	got := ParseChain(text)
	if len(got.Rules) != 1 || !reflect.DeepEqual(got.Rules[0], r) {
		t.Errorf("ParseChain(%q) = %+v, want %+v", text, got.Rules, r)
	}
}

// TestAddListRemove: on a FORWARD chain whose policy is DROP (made in the
// test's own network namespace with iptables-nft, ip6tables-nft for an
// IPv6 address), the rules Add inserts are what List reads back, and
// Remove takes them out; the other family's chain gets none.
func TestAddListRemove(t *testing.T) {
	nstest.NeedRoot(t)
	for _, tc := range []struct {
		cmd, other string
		addr       netip.Addr
	}{
		{"iptables", "ip6tables", netip.MustParseAddr("10.99.0.2")},
		{"ip6tables", "iptables", netip.MustParseAddr("fd00:99::2")},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			bin, other := lookBinary(tc.cmd, "nft", "nf_tables"), lookBinary(tc.other, "nft", "nf_tables")
			if bin == "" || other == "" {
				t.Skipf("no %s-nft or %s-nft", tc.cmd, tc.other)
			}
			for _, b := range []string{bin, other} {
				if err := iptables(b, "-P", "FORWARD", "DROP"); err != nil {
					t.Fatal(err)
				}
			}
			var found *Flavour
			for _, f := range Flavours(tc.addr.Is6()) {
				if f.Name == "nf_tables" {
					found = &f
				}
			}
			if found == nil || found.Binary != bin || !found.DropPolicy {
				t.Fatalf("Flavours: nf_tables %+v, want %s with a DROP policy", found, bin)
			}
			r := Rules{Key: "ns/id@12345678", Bridge: "hn-fwdtest", Addr: tc.addr}
			if err := r.Add(); err != nil {
				t.Fatal(err)
			}
			ch, err := List(bin)
			if err != nil {
				t.Fatal(err)
			}
			want := r
			want.Binaries = []string{bin}
			if ch.Policy != "DROP" || len(ch.Rules) != 1 || !reflect.DeepEqual(ch.Rules[0], want) {
				t.Errorf("List = %+v, want policy DROP and %+v", ch, want)
			}
			if och, err := List(other); err != nil || len(och.Rules) != 0 {
				t.Errorf("%s: %+v, %v, want no rules", other, och, err)
			}
			if err := ch.Rules[0].Remove(); err != nil {
				t.Fatal(err)
			}
			if ch, err := List(bin); err != nil || len(ch.Rules) != 0 {
				t.Errorf("after Remove: %+v, %v", ch, err)
			}
		})
	}
}
