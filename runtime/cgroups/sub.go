package cgroups

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	ocgroups "github.com/opencontainers/cgroups"
)

// ParseSub parses runc exec's --cgroup values: "[<controller>[,<controller>...]:]<path>",
// one path for all controllers (cgroup v2, or every v1 hierarchy) or paths
// by controller. The result maps a controller, or "" for all, to its path.
func ParseSub(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	sub := make(map[string]string, len(args))
	for _, arg := range args {
		ctrls, p, ok := strings.Cut(arg, ":")
		if !ok {
			if len(args) != 1 {
				return nil, fmt.Errorf("invalid --cgroup argument: %s (missing <controller>: prefix)", arg)
			}
			sub[""] = arg
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "" {
				return nil, fmt.Errorf("invalid --cgroup argument: %s (empty <controller> prefix)", arg)
			}
			if _, dup := sub[c]; dup {
				return nil, fmt.Errorf("invalid --cgroup argument(s): controller %s specified multiple times", c)
			}
			sub[c] = p
		}
	}
	return sub, nil
}

// AddSub moves pid into existing sub-cgroups of the container's cgroup, as
// runc exec --cgroup does: sub[""] below the cgroup in every hierarchy, or
// sub[controller] below it in that controller's hierarchy (cgroup v1),
// the cgroup itself elsewhere. A path may not leave the container's
// cgroup, and is not created.
func (p Paths) AddSub(pid int, sub map[string]string) error {
	if _, v2 := p[""]; v2 {
		for c := range sub {
			if c != "" {
				return fmt.Errorf("--cgroup %s:...: cgroup v2 has no per-controller paths", c)
			}
		}
	}
	all, common := sub[""]
	for c := range sub {
		if _, ok := p[c]; !ok && c != "" {
			return fmt.Errorf("unknown controller %s in --cgroup", c)
		}
	}
	dirs := map[string]bool{}
	for name, base := range p {
		s, ok := sub[name]
		if common {
			s, ok = all, true
		}
		dir := base
		if ok {
			dir = path.Join(base, s)
			if dir != base && !strings.HasPrefix(dir, strings.TrimSuffix(base, "/")+"/") {
				return fmt.Errorf("bad sub cgroup path: %s", s)
			}
		}
		// Co-mounted controllers (cpu,cpuacct) share one directory.
		real, err := filepath.EvalSymlinks(filepath.Join(hierarchyRoot(name), dir))
		if err != nil {
			return fmt.Errorf("sub-cgroup %s: %w", dir, err)
		}
		dirs[real] = true
	}
	for dir := range dirs {
		if err := ocgroups.WriteCgroupProc(dir, pid); err != nil {
			return fmt.Errorf("add process %d to %s: %w", pid, dir, err)
		}
	}
	return nil
}
