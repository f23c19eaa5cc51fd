package cgroups

import (
	"maps"
	"strings"
	"testing"
)

// exec --cgroup values, parsed with runc's rules and words.
func TestParseSub(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want map[string]string
		err  string
	}{
		{args: nil},
		{args: []string{"sub"}, want: map[string]string{"": "sub"}},
		{args: []string{"memory:a", "cpu,cpuacct:b"}, want: map[string]string{"memory": "a", "cpu": "b", "cpuacct": "b"}},
		{args: []string{"a", "b"}, err: "missing <controller>: prefix"},
		{args: []string{":a"}, err: "empty <controller> prefix"},
		{args: []string{"memory:a", "memory:b"}, err: "controller memory specified multiple times"},
	} {
		got, err := ParseSub(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSub(%q) = %v, %v; want error %q", tc.args, got, err, tc.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("ParseSub(%q) = %v, %v; want %v", tc.args, got, err, tc.want)
		}
	}
}

// A sub-cgroup may not leave the container's.
func TestAddSubRefusesEscape(t *testing.T) {
	p := Paths{"memory": "/hostnet-test/c"}
	for _, sub := range []string{"..", "../other", "a/../../x"} {
		if err := p.AddSub(1, map[string]string{"": sub}); err == nil || !strings.Contains(err.Error(), "bad sub cgroup path") {
			t.Errorf("AddSub(%q) = %v, want bad sub cgroup path", sub, err)
		}
	}
	if err := p.AddSub(1, map[string]string{"cpu": "a"}); err == nil {
		t.Error("AddSub with a controller the container lacks succeeded")
	}
}
