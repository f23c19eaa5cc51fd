package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procMemory is what a process holds, in KiB, from
// /proc/<pid>/smaps_rollup, and its threads, from /proc/<pid>/status.
//
// PSS charges each page to the processes mapping it, 1/n each: Pss =
// PssAnon + PssFile + PssShmem. Private pages are the process's alone
// (all of their size is in its PSS); shared ones are mapped by others too
// (the shim binary's text, mapped by every shim of that binary), of which
// only a share is in its PSS: SharedPss.
type procMemory struct {
	Rss, Pss                   float64
	PssAnon, PssFile, PssShmem float64
	SharedClean, SharedDirty   float64
	PrivateClean, PrivateDirty float64
	Anonymous                  float64
	Threads                    int
}

// smapsFields are the smaps_rollup lines procMemory holds.
func (m *procMemory) smapsFields() map[string]*float64 {
	return map[string]*float64{
		"Rss:": &m.Rss, "Pss:": &m.Pss,
		"Pss_Anon:": &m.PssAnon, "Pss_File:": &m.PssFile, "Pss_Shmem:": &m.PssShmem,
		"Shared_Clean:": &m.SharedClean, "Shared_Dirty:": &m.SharedDirty,
		"Private_Clean:": &m.PrivateClean, "Private_Dirty:": &m.PrivateDirty,
		"Anonymous:": &m.Anonymous,
	}
}

// parseSmapsRollup reads the sizes of a /proc/<pid>/smaps_rollup. Rss and
// Pss must be there; Pss_Anon, Pss_File and Pss_Shmem are Linux 5.0's and
// stay 0 on older kernels.
func parseSmapsRollup(data string) (procMemory, error) {
	var m procMemory
	fields := m.smapsFields()
	seen := map[string]bool{}
	for l := range strings.Lines(data) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		p, ok := fields[f[0]]
		if !ok {
			continue
		}
		if len(f) != 3 || f[2] != "kB" {
			return procMemory{}, fmt.Errorf("smaps_rollup: malformed line %q", strings.TrimSpace(l))
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return procMemory{}, fmt.Errorf("smaps_rollup: %s: %w", f[0], err)
		}
		*p = v
		seen[f[0]] = true
	}
	if !seen["Rss:"] || !seen["Pss:"] {
		return procMemory{}, fmt.Errorf("smaps_rollup: no Rss or Pss line")
	}
	return m, nil
}

// parseThreads reads the Threads line of a /proc/<pid>/status.
func parseThreads(status string) (int, error) {
	for l := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("status: Threads: %w", err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("status: no Threads line")
}

// readProcMemory reads pid's memory and threads.
func readProcMemory(pid int) (procMemory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return procMemory{}, err
	}
	m, err := parseSmapsRollup(string(data))
	if err != nil {
		return procMemory{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMemory{}, err
	}
	if m.Threads, err = parseThreads(string(st)); err != nil {
		return procMemory{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}

// add sums o into m.
func (m *procMemory) add(o procMemory) {
	theirs := o.smapsFields()
	for k, p := range m.smapsFields() {
		*p += *theirs[k]
	}
	m.Threads += o.Threads
}

// SharedPss is the part of the PSS charged for pages others map too.
func (m procMemory) SharedPss() float64 {
	return m.Pss - m.PrivateClean - m.PrivateDirty
}

// sumProcMemory sums the memory of pids.
func sumProcMemory(pids []int) (procMemory, error) {
	var sum procMemory
	for _, pid := range pids {
		m, err := readProcMemory(pid)
		if err != nil {
			return procMemory{}, err
		}
		sum.add(m)
	}
	return sum, nil
}

// perMiB is the sum s shared out over n (shims or containers), in MiB
// and threads, keyed as the memory tables' columns are, after prefix.
func (s procMemory) perMiB(n int, prefix string) map[string]float64 {
	d := float64(n)
	mib := func(kib float64) float64 { return kib / 1024 / d }
	return map[string]float64{
		prefix + "pss":       mib(s.Pss),
		prefix + "rss":       mib(s.Rss),
		prefix + "pdirty":    mib(s.PrivateDirty),
		prefix + "pclean":    mib(s.PrivateClean),
		prefix + "shared":    mib(s.SharedClean + s.SharedDirty),
		prefix + "sharedpss": mib(s.SharedPss()),
		prefix + "pssanon":   mib(s.PssAnon),
		prefix + "pssfile":   mib(s.PssFile),
		prefix + "threads":   float64(s.Threads) / d,
	}
}
