package main

import (
	"fmt"
	"io"
)

// Goal is one target of issue 14: Row's Key over Versus's Key, in the
// table ID, at most Max.
type Goal struct {
	Figure string  `json:"figure"`
	Table  string  `json:"table"`
	Row    string  `json:"row"`
	Versus string  `json:"versus"`
	Key    string  `json:"key"`
	Max    float64 `json:"max"`
	// Now is the ratio measured in this run; 0 when a row is missing.
	Now float64 `json:"now,omitempty"`
	// ViaRunc is the same ratio for hostnet's shim driving runc 1.5.2,
	// where the table has that row: what the shim alone gains.
	ViaRunc float64 `json:"via_runc,omitempty"`
	Met     bool    `json:"met"`
}

// goals are issue 14's targets for the knobs of this run.
func (b *bench) goals() []Goal {
	return []Goal{
		{Figure: "`ctr run --rm` lifecycle vs runc 1.5.2", Table: "ctr-run", Row: "hostnet", Versus: "runc 1.5.2", Key: "mean", Max: 0.70},
		{Figure: "Go-client lifecycle vs runc 1.5.2", Table: "client-run", Row: "hostnet", Versus: "runc 1.5.2", Key: "mean", Max: 0.65},
		{Figure: fmt.Sprintf("%d concurrent creates+starts vs runc 1.5.2", b.o.scale), Table: "scale", Row: "hostnet", Versus: "runc 1.5.2", Key: "time", Max: 0.50},
		{Figure: fmt.Sprintf("shim PSS per container, %d running, vs runc shim", b.o.memMany), Table: "shim-memory",
			Row: fmt.Sprintf("hostnet shim, %d", b.o.memMany), Versus: fmt.Sprintf("runc shim (runc 1.5.2), %d", b.o.memMany), Key: "pss", Max: 0.50},
		{Figure: fmt.Sprintf("shim PSS per container, %d running, settled, vs runc shim", b.o.memMany), Table: "shim-memory",
			Row: fmt.Sprintf("hostnet shim, %d", b.o.memMany), Versus: fmt.Sprintf("runc shim (runc 1.5.2), %d", b.o.memMany), Key: "s_pss", Max: 0.50},
		{Figure: fmt.Sprintf("shim PSS per container under CRI (%d pods × %d), settled, vs runc shim", b.o.criPods, b.o.criContainers), Table: "cri-memory",
			Row: criRowHostnet, Versus: criRowRunc, Key: "s_pss", Max: 0.50},
		{Figure: "hostnet-runc create+start+delete vs crun 1.8.1", Table: "runtime", Row: "hostnet-runc", Versus: "crun 1.8.1", Key: "mean", Max: 1.0},
	}
}

// scoreGoals fills in each goal's ratios from the run's tables.
func (res *Results) scoreGoals(goals []Goal) {
	value := func(table, row, key string) (float64, bool) {
		for _, t := range res.Tables {
			if t.ID != table {
				continue
			}
			for _, r := range t.Rows {
				if r.Name == row && r.Err == "" {
					v, ok := r.V[key]
					return v, ok
				}
			}
		}
		return 0, false
	}
	res.Goals = nil
	for _, g := range goals {
		v, ok1 := value(g.Table, g.Row, g.Key)
		base, ok2 := value(g.Table, g.Versus, g.Key)
		if !ok1 || !ok2 || base == 0 {
			continue
		}
		g.Now = v / base
		g.Met = g.Now <= g.Max
		if via, ok := value(g.Table, hostnetViaRunc, g.Key); ok {
			g.ViaRunc = via / base
		}
		res.Goals = append(res.Goals, g)
	}
}

// goalsMarkdown writes the goal table: each figure of issue 14, measured
// in this run, against its goal.
func (res *Results) goalsMarkdown(w io.Writer) {
	if len(res.Goals) == 0 {
		return
	}
	fmt.Fprintf(w, "### Goals (issue 14)\n\nEach a ratio measured in this run; \"%s\" is hostnet's shim driving runc 1.5.2 (go-runc), where the table has that row.\n\n", hostnetViaRunc)
	fmt.Fprintf(w, "| figure | hostnet | %s | goal | met |\n|---|---:|---:|---:|---|\n", hostnetViaRunc)
	for _, g := range res.Goals {
		via := "—"
		if g.ViaRunc != 0 {
			via = fmt.Sprintf("%.2fx", g.ViaRunc)
		}
		met := "no"
		if g.Met {
			met = "yes"
		}
		fmt.Fprintf(w, "| %s | %.2fx | %s | ≤ %.2fx | %s |\n", g.Figure, g.Now, via, g.Max, met)
	}
	fmt.Fprintln(w)
}
