package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupRoot = "/sys/fs/cgroup"

// Finding is something a test left on the host that the harness had to
// clean up (or could not).
type Finding struct {
	Kind   string `json:"kind"` // container, process, mount, cgroup, cgroup-unattributed, mount-outside, cleanup-error
	Detail string `json:"detail"`
}

func (f Finding) String() string { return f.Kind + ": " + f.Detail }

// HostSnapshot is the host state a test's leftovers are measured against.
type HostSnapshot struct {
	mounts  map[string]string // mount ID -> mount point
	cgroups map[string]bool   // /sys/fs/cgroup/<hierarchy>/<path>
}

func snapshotHost() HostSnapshot {
	return HostSnapshot{mounts: readMounts(), cgroups: readCgroups()}
}

// readMounts returns mount ID -> mount point from /proc/self/mountinfo.
func readMounts() map[string]string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		m[f[0]] = unescapeMount(f[4])
	}
	return m
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupHierarchies returns the mounted cgroup hierarchies (v1 controllers
// and the v2 "unified" tree, or the v2 root itself).
func cgroupHierarchies() []string {
	var hs []string
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{cgroupRoot} // pure cgroup v2
	}
	ents, _ := os.ReadDir(cgroupRoot)
	for _, e := range ents {
		if e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			hs = append(hs, filepath.Join(cgroupRoot, e.Name()))
		}
	}
	return hs
}

func readCgroups() map[string]bool {
	m := map[string]bool{}
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(h, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				m[p] = true
			}
			return nil
		})
	}
	return m
}

// containerIDs returns the ids the test passed to `create`/`run`, from the
// wrapper's call log.
func containerIDs(calls []string) []string {
	seen := map[string]bool{}
	var ids []string
	for _, c := range calls {
		c, _, _ = strings.Cut(c, " => ")
		f := strings.Fields(c)
		if len(f) < 2 || (f[0] != "create" && f[0] != "run") {
			continue
		}
		id := f[len(f)-1]
		if strings.HasPrefix(id, "-") || strings.Contains(id, "/") {
			continue // no id given: the last word is a flag or a path
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// Names runtime-tools uses for the cgroups of the linux_cgroups_* tests
// (cgroups.AbsCgroupPath, cgroups.RelCgroupPath).
var suiteCgroupNames = []string{"cgrouptest", "testdir"}

func attributedCgroup(path string, ids []string) bool {
	for _, part := range strings.Split(path, "/") {
		for _, n := range suiteCgroupNames {
			if part == n {
				return true
			}
		}
		for _, id := range ids {
			if strings.Contains(part, id) {
				return true
			}
		}
	}
	return false
}

type listedContainer struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

// cleanupRun removes everything one test left behind and returns what it
// found. runDir is the test's private directory; before is the host
// snapshot taken just before the test started.
func cleanupRun(rp *Reaper, rt Runtime, runDir, stateDir string, calls []string, before HostSnapshot) []Finding {
	var fs []Finding
	add := func(kind, format string, args ...any) {
		fs = append(fs, Finding{Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	env := os.Environ()

	// 1. Containers still in the runtime's state root.
	out, code, err := rp.Run([]string{rt.Path, "--root", stateDir, "list", "--format", "json"}, env, 20*time.Second)
	var cs []listedContainer
	if err == nil && code == 0 {
		_ = json.Unmarshal([]byte(strings.TrimSpace(out)), &cs)
	} else if _, serr := os.Stat(stateDir); serr == nil {
		add("cleanup-error", "%s list: exit %d: %v %s", rt.Name, code, err, strings.TrimSpace(out))
	}
	for _, c := range cs {
		add("container", "%s still listed container %s (status %s, pid %d) after the test", rt.Name, c.ID, c.Status, c.Pid)
		if c.Pid > 0 && alive(c.Pid) {
			_ = syscall.Kill(c.Pid, syscall.SIGKILL)
		}
		out, code, err := rp.Run([]string{rt.Path, "--root", stateDir, "delete", "--force", c.ID}, env, 20*time.Second)
		if err != nil || code != 0 {
			add("cleanup-error", "%s delete --force %s: exit %d: %v %s", rt.Name, c.ID, code, err, strings.TrimSpace(out))
		}
	}

	// 2. Processes still under the harness (the subreaper): container
	// processes, unshare helpers, hooks.
	if left := descendants(); len(left) > 0 {
		for _, p := range left {
			add("process", "%s", p)
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		waitGone(left, 5*time.Second)
	}

	// 3. Mounts: new mounts under the run directory are ours; unmount them
	// deepest first. New mounts elsewhere are reported only (other work on
	// the host may have made them).
	after := readMounts()
	var ours []string
	for id, mp := range after {
		if _, ok := before.mounts[id]; ok {
			continue
		}
		if mp == runDir || strings.HasPrefix(mp, runDir+"/") {
			ours = append(ours, mp)
		} else {
			add("mount-outside", "new mount %s (outside the test's directory; may be unrelated host activity)", mp)
		}
	}
	sort.Slice(ours, func(i, j int) bool { return len(ours[i]) > len(ours[j]) })
	for _, mp := range ours {
		add("mount", "%s", mp)
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			add("cleanup-error", "umount %s: %v", mp, err)
		}
	}

	// 4. Cgroups the test created and nobody removed.
	ids := containerIDs(calls)
	var leaked []string
	for p := range readCgroups() {
		if before.cgroups[p] {
			continue
		}
		if attributedCgroup(strings.TrimPrefix(p, cgroupRoot), ids) {
			leaked = append(leaked, p)
		} else {
			add("cgroup-unattributed", "new cgroup %s (not named after this test's containers; left alone)", p)
		}
	}
	return append(fs, removeCgroups(leaked)...)
}

// removeCgroups kills the processes in the given cgroups, thaws frozen
// ones and removes them, deepest first.
func removeCgroups(paths []string) []Finding {
	var fs []Finding
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	// One finding per cgroup path, listing the hierarchies it was left in.
	var order []string
	hiers := map[string][]string{}
	procs := map[string][]int{}
	for _, p := range paths {
		rel := strings.TrimPrefix(p, cgroupRoot+"/")
		h, rest, _ := strings.Cut(rel, "/")
		rest = "/" + rest
		if _, ok := hiers[rest]; !ok {
			order = append(order, rest)
		}
		hiers[rest] = append(hiers[rest], h)
		procs[rest] = append(procs[rest], cgroupProcs(p)...)
	}
	for _, rest := range order {
		sort.Strings(hiers[rest])
		detail := fmt.Sprintf("%s left in %s", rest, strings.Join(hiers[rest], ","))
		if len(procs[rest]) > 0 {
			detail += fmt.Sprintf(" with processes %v", procs[rest])
		}
		fs = append(fs, Finding{Kind: "cgroup", Detail: detail})
	}
	for _, p := range paths {
		if b, err := os.ReadFile(filepath.Join(p, "freezer.state")); err == nil && strings.TrimSpace(string(b)) != "THAWED" {
			_ = os.WriteFile(filepath.Join(p, "freezer.state"), []byte("THAWED"), 0)
		}
		_ = os.WriteFile(filepath.Join(p, "cgroup.freeze"), []byte("0"), 0)
		for _, pid := range cgroupProcs(p) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, p := range paths {
		var err error
		for i := 0; i < 30; i++ {
			if err = syscall.Rmdir(p); err == nil || err == syscall.ENOENT {
				err = nil
				break
			}
			for _, pid := range cgroupProcs(p) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			fs = append(fs, Finding{Kind: "cleanup-error", Detail: fmt.Sprintf("rmdir %s: %v", p, err)})
		}
	}
	return fs
}

func cgroupProcs(p string) []int {
	b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if v, err := strconv.Atoi(f); err == nil {
			pids = append(pids, v)
		}
	}
	return pids
}

func waitGone(ps []procInfo, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		any := false
		for _, p := range ps {
			if alive(p.Pid) {
				any = true
			}
		}
		if !any {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sweepSuiteCgroups removes cgroups named like runtime-tools' test cgroups
// that an earlier, interrupted run left behind, before this run starts.
func sweepSuiteCgroups() []Finding {
	var paths []string
	for p := range readCgroups() {
		if attributedCgroup(strings.TrimPrefix(p, cgroupRoot), nil) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	fs := removeCgroups(paths)
	for i := range fs {
		fs[i].Detail = "before the run (left by an earlier run): " + fs[i].Detail
	}
	return fs
}
