package cgroups

import (
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v2Resources converts the spec's limits for containerd/cgroups. Device
// rules are left out: setDeviceFilter enforces them.
func v2Resources(res *specs.LinuxResources) *cgroup2.Resources {
	r := cgroup2.ToResources(res)
	r.Devices = nil
	return r
}
