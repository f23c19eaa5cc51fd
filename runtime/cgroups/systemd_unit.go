package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3"
)

// Unit is a container's cgroup as the systemd driver names it: a transient
// scope (or slice) unit inside a parent slice.
type Unit struct {
	// Slice is the parent slice, e.g. "system.slice" or
	// "kubepods-besteffort-pod1234.slice".
	Slice string `json:"slice"`
	// Name is the unit, e.g. "cri-containerd-abc.scope".
	Name string `json:"name"`
}

// defaultSlice is where runc and systemd-run put scopes of system services.
const defaultSlice = "system.slice"

// defaultScopePrefix names a container's scope when the spec gives no
// cgroupsPath, as runc's "runc-<id>.scope" does.
const defaultScopePrefix = "hostnet"

// ParseSystemdPath reads a cgroupsPath in runc's systemd form
// "slice:prefix:name" into a unit: "system.slice:docker:abc" is the scope
// "docker-abc.scope" in system.slice. An empty path names the scope
// "hostnet-<id>.scope" in system.slice. A name that ends in ".slice" is a
// slice unit of its own, as runc allows.
func ParseSystemdPath(p, id string) (Unit, error) {
	if p == "" {
		return Unit{Slice: defaultSlice, Name: defaultScopePrefix + "-" + id + ".scope"}, nil
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return Unit{}, fmt.Errorf("expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got %q instead", p)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = defaultSlice
	}
	if name == "" {
		return Unit{}, fmt.Errorf("cgroupsPath %q: the unit name is empty", p)
	}
	u := Unit{Slice: slice}
	switch {
	case strings.HasSuffix(name, ".slice"):
		u.Name = name
	case prefix == "":
		u.Name = name + ".scope"
	default:
		u.Name = prefix + "-" + name + ".scope"
	}
	if strings.ContainsAny(u.Name, "/\x00") {
		return Unit{}, fmt.Errorf("cgroupsPath %q: unit name %q may not contain '/'", p, u.Name)
	}
	if _, err := ExpandSlice(u.Slice); err != nil {
		return Unit{}, fmt.Errorf("cgroupsPath %q: %w", p, err)
	}
	if u.IsSlice() {
		// A slice's own name must also nest under its parent.
		if _, err := ExpandSlice(u.Name); err != nil {
			return Unit{}, fmt.Errorf("cgroupsPath %q: %w", p, err)
		}
	}
	return u, nil
}

// IsSlice reports whether the container gets a slice unit, not a scope.
func (u Unit) IsSlice() bool { return strings.HasSuffix(u.Name, ".slice") }

// Path is the unit's cgroup below the root of every hierarchy, the way
// systemd lays it out: "a-b.slice" lives in /a.slice/a-b.slice.
func (u Unit) Path() (string, error) {
	parent, err := ExpandSlice(u.Slice)
	if err != nil {
		return "", err
	}
	if u.IsSlice() {
		// systemd nests a slice by its name, whatever parent was given.
		return ExpandSlice(u.Name)
	}
	return filepath.Join(parent, u.Name), nil
}

// String is the unit as systemctl shows it.
func (u Unit) String() string { return u.Name }

// ExpandSlice turns a slice name into its cgroup path: each dash opens a
// level, "-.slice" is the root. The rules are systemd's unit name rules for
// slices.
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	if !strings.HasSuffix(slice, suffix) || len(slice) <= len(suffix) {
		return "", fmt.Errorf("invalid slice name %q: it must end in %q", slice, suffix)
	}
	if strings.Contains(slice, "/") {
		return "", fmt.Errorf("invalid slice name %q: it may not contain '/'", slice)
	}
	if slice == "-.slice" {
		return "/", nil
	}
	base := strings.TrimSuffix(slice, suffix)
	var path, prefix strings.Builder
	for _, part := range strings.Split(base, "-") {
		if part == "" {
			return "", fmt.Errorf("invalid slice name %q: empty component between dashes", slice)
		}
		path.WriteString("/" + prefix.String() + part + suffix)
		prefix.WriteString(part + "-")
	}
	return path.String(), nil
}

// unifiedKey holds the path in the v2 hierarchy of a hybrid host, mounted
// at /sys/fs/cgroup/unified.
const unifiedKey = "unified"

// ResolveUnit places the unit's cgroup at the same absolute path in every
// hierarchy, as systemd does; on cgroup v2 the one path is under "".
func ResolveUnit(u Unit) (Paths, error) {
	p, err := u.Path()
	if err != nil {
		return nil, err
	}
	if cgroups.Mode() == cgroups.Unified {
		return Paths{"": p}, nil
	}
	own, _, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup") // procfs-literal: read by create, in the host's mount namespace
	if err != nil {
		return nil, fmt.Errorf("read own cgroup: %w", err)
	}
	paths := Paths{}
	for name := range own {
		paths[strings.TrimPrefix(name, "name=")] = p
	}
	if len(paths) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy is mounted")
	}
	if cgroups.Mode() == cgroups.Hybrid {
		// systemd tracks a unit's processes in the v2 hierarchy of a
		// hybrid host: exec'd processes must join it too, or systemd
		// counts them in the caller's unit (containerd's) instead.
		paths[unifiedKey] = p
	}
	return paths, nil
}
