package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// SVG draws one panel per table: a horizontal bar per contender, its ratio
// to the table's anchor, with a dashed line at 1.0.
func (res *Results) SVG(w io.Writer) {
	const (
		width   = 900
		labelW  = 260
		barMaxW = 520
		rowH    = 22
		titleH  = 40
		gap     = 18
	)
	height := 74
	for _, t := range res.Tables {
		height += titleH + rowH*len(t.Rows) + gap
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">hostnet vs runc / CNI: ratio to the anchor (same run)</text>`+"\n")
	// Two lines: the machine, then the versions, so neither is cut off.
	machine, versions, _ := strings.Cut(res.Machine.Line(), "; ")
	fmt.Fprintf(&b, `<text x="10" y="40" font-size="11" fill="#555">%s</text>`+"\n", html.EscapeString(machine))
	fmt.Fprintf(&b, `<text x="10" y="54" font-size="11" fill="#555">%s</text>`+"\n", html.EscapeString(versions))
	y := 74
	for _, t := range res.Tables {
		maxR := 1.0
		for _, r := range t.Rows {
			if r.Err == "" && !math.IsInf(r.Ratio, 0) {
				maxR = math.Max(maxR, r.Ratio)
			}
		}
		maxR = math.Ceil(maxR*1.1*4) / 4
		scale := barMaxW / maxR
		better := "lower is better"
		if t.HigherIsBetter {
			better = "higher is better"
		}
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+16, html.EscapeString(stripMD(t.Title)))
		fmt.Fprintf(&b, `<text x="10" y="%d" font-size="10" fill="#555">%s of %s; anchor %s = 1.0; %s</text>`+"\n", y+30, html.EscapeString(t.RatioOf), html.EscapeString(t.ID), html.EscapeString(t.Anchor), better)
		top := y + titleH
		for i, r := range t.Rows {
			ry := top + i*rowH
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, ry+15, html.EscapeString(r.Name))
			switch {
			case r.Err != "":
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#b00">fails</text>`+"\n", labelW+4, ry+15)
			case r.Ratio == 0:
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#777">n/a</text>`+"\n", labelW+4, ry+15)
			default:
				color := "#4c78a8"
				switch {
				case r.Name == t.Anchor:
					color = "#9e9e9e"
				case strings.HasPrefix(r.Name, "hostnet"):
					color = "#f58518"
				}
				bw := r.Ratio * scale
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, ry+3, bw, rowH-6, color)
				fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2fx</text>`+"\n", float64(labelW)+bw+5, ry+15, r.Ratio)
			}
		}
		x1 := float64(labelW) + scale
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-dasharray="4,3"/>`+"\n", x1, top, x1, top+rowH*len(t.Rows))
		y = top + rowH*len(t.Rows) + gap
	}
	b.WriteString("</svg>\n")
	io.WriteString(w, b.String())
}

func stripMD(s string) string { return strings.ReplaceAll(s, "`", "") }
