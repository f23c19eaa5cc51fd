package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// Col is one numeric column of a table.
type Col struct {
	Key  string `json:"key"`
	Head string `json:"head"`
	Unit string `json:"unit"`
}

// Row is one contender's figures; V is keyed by Col.Key.
type Row struct {
	Name    string             `json:"name"`
	V       map[string]float64 `json:"values,omitempty"`
	Ratio   float64            `json:"ratio,omitempty"` // V[RatioOf] / anchor's V[RatioOf]
	Err     string             `json:"error,omitempty"`
	Samples []float64          `json:"samples,omitempty"`
}

// Table is one measurement; every ratio is against Anchor, measured in the
// same run.
type Table struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Note    string `json:"note,omitempty"`
	Anchor  string `json:"anchor"`
	RatioOf string `json:"ratio_of"`
	// RatioHead names the ratio's column when RatioOf's key would not read
	// well there.
	RatioHead string `json:"ratio_head,omitempty"`
	// HigherIsBetter is true for throughput: the chart says so.
	HigherIsBetter bool  `json:"higher_is_better,omitempty"`
	Cols           []Col `json:"columns"`
	Rows           []Row `json:"rows"`
}

// Results is everything one run produced: what results.json holds.
type Results struct {
	Machine Machine  `json:"machine"`
	Config  RunConf  `json:"config"`
	Goals   []Goal   `json:"goals,omitempty"`
	Tables  []*Table `json:"tables"`
	Notes   []string `json:"notes,omitempty"`
}

// RunConf records the knobs of the run.
type RunConf struct {
	N       int `json:"n"`
	Startup int `json:"startup_runs"`
	Scale   int `json:"scale"`
	MemMany int `json:"memory_containers"`
	// SettleS is when the settled shim memory is read, in s after start.
	SettleS       float64 `json:"memory_settle_s"`
	CRIPods       int     `json:"cri_pods"`
	CRIContainers int     `json:"cri_containers_per_pod"`
	IperfSecs     int     `json:"iperf_seconds"`
	IperfRuns     int     `json:"iperf_runs"`
	Requests      int     `json:"latency_requests"`
	Started       string  `json:"started"`
	DurationS     float64 `json:"duration_s"`
}

// stats are the usual summary of time samples, in the samples' unit.
type stats struct{ Mean, Median, P95, Min, Max float64 }

func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	return stats{
		Mean:   sum / float64(len(s)),
		Median: percentile(s, 50),
		P95:    percentile(s, 95),
		Min:    s[0],
		Max:    s[len(s)-1],
	}
}

// percentile of sorted s, nearest-rank.
func percentile(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(len(s)-1, k))]
}

var timeCols = []Col{
	{"mean", "mean", "ms"}, {"median", "median", "ms"}, {"p95", "p95", "ms"}, {"min", "min", "ms"},
}

// timeRow summarizes samples in milliseconds.
func timeRow(name string, samples []float64, err error) Row {
	r := Row{Name: name, Samples: samples}
	if err != nil {
		r.Err = err.Error()
	}
	if len(samples) > 0 {
		s := summarize(samples)
		r.V = map[string]float64{"mean": s.Mean, "median": s.Median, "p95": s.P95, "min": s.Min, "n": float64(len(samples))}
	}
	return r
}

// finish computes the ratios against the anchor row.
func (t *Table) finish() {
	var base float64
	for _, r := range t.Rows {
		if r.Name == t.Anchor && r.Err == "" {
			base = r.V[t.RatioOf]
		}
	}
	for i := range t.Rows {
		r := &t.Rows[i]
		if base != 0 && r.Err == "" && r.V != nil {
			r.Ratio = r.V[t.RatioOf] / base
		}
	}
}

// fractional is the unit of a count shown with two decimals (a mean of
// counts).
const fractional = ".00"

func fmtNum(v float64, unit string) string {
	switch {
	case unit == "":
		return fmt.Sprintf("%.0f", v)
	case unit == fractional:
		return fmt.Sprintf("%.2f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}

// Markdown writes the table.
func (t *Table) Markdown(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n", t.Title)
	if t.Note != "" {
		fmt.Fprintf(w, "%s\n\n", t.Note)
	}
	head := []string{"runtime"}
	align := []string{"---"}
	for _, c := range t.Cols {
		head = append(head, c.Head)
		align = append(align, "---:")
	}
	ratioOf := t.RatioOf
	if t.RatioHead != "" {
		ratioOf = t.RatioHead
	}
	head = append(head, fmt.Sprintf("%s vs %s", ratioOf, t.Anchor))
	align = append(align, "---:")
	fmt.Fprintf(w, "| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(align, "|"))
	for _, r := range t.Rows {
		cells := []string{r.Name}
		if r.Err != "" {
			msg := lastNonEmptyLine(r.Err)
			if len(msg) > 90 {
				msg = msg[:90] + "…"
			}
			msg = strings.ReplaceAll(strings.ReplaceAll(msg, "|", "/"), "\n", " ")
			cells = append(cells, "fails: "+msg)
			for range len(t.Cols) - 1 {
				cells = append(cells, "")
			}
			cells = append(cells, "—")
		} else {
			for _, c := range t.Cols {
				v, ok := r.V[c.Key]
				if !ok {
					cells = append(cells, "")
					continue
				}
				cells = append(cells, fmtNum(v, c.Unit))
			}
			if r.Ratio != 0 {
				cells = append(cells, fmt.Sprintf("%.2fx", r.Ratio))
			} else {
				cells = append(cells, "—")
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
}

// Markdown writes the machine line and every table.
func (res *Results) Markdown(w io.Writer) {
	fmt.Fprintf(w, "## hostnet benchmark\n\n%s\n\n", res.Machine.Line())
	fmt.Fprintf(w, "N=%d per contender, interleaved round-robin; started %s, took %.0f s. Ratios are against the anchor measured in the same run.\n\n",
		res.Config.N, res.Config.Started, res.Config.DurationS)
	res.goalsMarkdown(w)
	for _, t := range res.Tables {
		t.Markdown(w)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func lastNonEmptyLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
