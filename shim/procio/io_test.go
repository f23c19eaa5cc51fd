package procio

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, path string
		err              error
	}{
		{in: "/run/containerd/fifo/1/x-stdout", scheme: "fifo", path: "/run/containerd/fifo/1/x-stdout"},
		{in: "fifo:///run/f", scheme: "fifo", path: "/run/f"},
		{in: "file:///var/log/c.log", scheme: "file", path: "/var/log/c.log"},
		{in: "binary:///usr/bin/logger?id=1", scheme: "binary", path: "/usr/bin/logger"},
		{in: "binary-v2:///usr/bin/logger", scheme: "binary-v2", path: "/usr/bin/logger"},
		{in: "file://relative/x", err: errdefs.ErrInvalidArgument},
		{in: "ftp://host/x", err: errdefs.ErrInvalidArgument},
	} {
		u, err := parseTarget(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("parseTarget(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || u.Scheme != tc.scheme || u.Path != tc.path {
			t.Errorf("parseTarget(%q) = %v, %v", tc.in, u, err)
		}
	}
}
