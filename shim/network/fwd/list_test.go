package fwd

import (
	"net/netip"
	"reflect"
	"testing"
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
