package main

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// cat /proc/self/smaps_rollup on Linux 6.18.
const rollupSample = `56333fcb3000-7ffd83f0e000 ---p 00000000 00:00 0                          [rollup]
Rss:                1736 kB
Pss:                 293 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            181 kB
Pss_Shmem:             0 kB
Shared_Clean:       1584 kB
Shared_Dirty:          0 kB
Private_Clean:        40 kB
Private_Dirty:       112 kB
Referenced:         1736 kB
Anonymous:           112 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`

func TestParseSmapsRollup(t *testing.T) {
	m, err := parseSmapsRollup(rollupSample)
	if err != nil {
		t.Fatal(err)
	}
	want := procMemory{Rss: 1736, Pss: 293, PssAnon: 112, PssFile: 181, SharedClean: 1584, PrivateClean: 40, PrivateDirty: 112, Anonymous: 112}
	if m != want {
		t.Errorf("parsed %+v, want %+v", m, want)
	}
	// 293 - 40 - 112: the share of the 1584 kB shared pages.
	if got := m.SharedPss(); got != 141 {
		t.Errorf("SharedPss = %v, want 141", got)
	}
}

func TestParseSmapsRollupOldKernel(t *testing.T) {
	// Before Linux 5.0: no Pss_Anon, Pss_File, Pss_Shmem.
	var old []string
	for l := range strings.Lines(rollupSample) {
		if !strings.HasPrefix(l, "Pss_") {
			old = append(old, l)
		}
	}
	m, err := parseSmapsRollup(strings.Join(old, ""))
	if err != nil {
		t.Fatal(err)
	}
	if m.Pss != 293 || m.PssAnon != 0 || m.PssFile != 0 {
		t.Errorf("parsed %+v", m)
	}
}

func TestParseSmapsRollupErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":    "",
		"no pss":   "Rss: 10 kB\n",
		"no unit":  "Rss: 10\nPss: 5 kB\n",
		"not num":  "Rss: ten kB\nPss: 5 kB\n",
		"bad unit": "Rss: 10 MB\nPss: 5 kB\n",
	} {
		if m, err := parseSmapsRollup(in); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, m)
		}
	}
}

func TestParseThreads(t *testing.T) {
	n, err := parseThreads("Name:\tcontainerd-shim\nUmask:\t0022\nState:\tS (sleeping)\nThreads:\t9\nSigQ:\t0/95834\n")
	if err != nil || n != 9 {
		t.Errorf("parseThreads = %d, %v; want 9", n, err)
	}
	for _, in := range []string{"Name:\tx\n", "Threads:\tnine\n"} {
		if n, err := parseThreads(in); err == nil {
			t.Errorf("parseThreads(%q) = %d, want an error", in, n)
		}
	}
}

func TestProcMemoryAddAndPerMiB(t *testing.T) {
	a, err := parseSmapsRollup(rollupSample)
	if err != nil {
		t.Fatal(err)
	}
	a.Threads = 8
	var sum procMemory
	sum.add(a)
	sum.add(a)
	if sum.Pss != 586 || sum.SharedClean != 3168 || sum.Threads != 16 {
		t.Errorf("sum of two: %+v", sum)
	}
	v := sum.perMiB(2, "s_")
	for k, want := range map[string]float64{
		"s_pss": 293.0 / 1024, "s_pdirty": 112.0 / 1024, "s_pclean": 40.0 / 1024, "s_shared": 1584.0 / 1024,
		"s_sharedpss": 141.0 / 1024, "s_pssanon": 112.0 / 1024, "s_pssfile": 181.0 / 1024, "s_rss": 1736.0 / 1024, "s_threads": 8,
	} {
		if math.Abs(v[k]-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, v[k], want)
		}
	}
	// Every column of the breakdown tables has a value.
	for _, c := range memBreakdownCols() {
		if _, ok := v[c.Key]; !ok {
			t.Errorf("perMiB has no %s", c.Key)
		}
	}
}

func TestPodShims(t *testing.T) {
	pods := []*criPod{
		{id: "sb1", containers: []string{"c11", "c12"}},
		// Not grouped: each container got a shim of its own.
		{id: "sb2", containers: []string{"c21", "c22"}},
	}
	shims := map[string]int{"sb1": 100, "sb2": 200, "c21": 201, "c22": 202, "other": 300}
	pids, perPod, err := podShims(shims, pods)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []int{100, 200, 201, 202}) || !slices.Equal(perPod, []int{1, 3}) {
		t.Errorf("podShims = %v, %v", pids, perPod)
	}
	if _, _, err := podShims(shims, []*criPod{{id: "sb3"}}); err == nil {
		t.Error("a pod without a shim: no error")
	}
}

func TestMemRows(t *testing.T) {
	m, err := parseSmapsRollup(rollupSample)
	if err != nil {
		t.Fatal(err)
	}
	r := &memReading{name: "x", early: m, settled: m, shims: 1}
	row, brow := memRows(r)
	if row.Err != "" || row.V["pss"] != 293.0/1024 || row.V["s_pss"] != 293.0/1024 || row.V["shims"] != 1 {
		t.Errorf("row %+v", row)
	}
	if brow.V["s_pdirty"] != 112.0/1024 {
		t.Errorf("breakdown row %+v", brow)
	}
	if row, _ := memRows(&memReading{name: "none"}); row.Err == "" {
		t.Error("no shims: no error")
	}
}

func TestMemoryRuntimes(t *testing.T) {
	b := &bench{rts: []*rtSpec{
		{name: "hostnet", runtime: "io.containerd.hostnet.v1"},
		{name: "runc 1.5.2", runtime: "io.containerd.runc.v2"},
		{name: hostnetViaRunc, runtime: "io.containerd.hostnet.v1"},
		{name: "runc 1.1.5 (Debian)", runtime: "io.containerd.runc.v2"},
		{name: "main", runtime: "/tmp/main/containerd-shim-hostnet-v1"},
	}}
	var names []string
	for _, rt := range b.memoryRuntimes() {
		names = append(names, rt.name)
	}
	if !slices.Equal(names, []string{"hostnet", "runc 1.5.2", "main"}) {
		t.Errorf("memoryRuntimes = %q", names)
	}
	if len(b.rts) != 5 || b.rts[2].name != hostnetViaRunc {
		t.Errorf("memoryRuntimes changed b.rts: %v", b.rts)
	}
}
