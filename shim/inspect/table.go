package inspect

import (
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// table is rows of text under a header, written in aligned columns.
type table struct {
	header []string
	rows   [][]string
	// shrink are the columns that may be cut, in the order they give way
	// when the table is wider than the terminal.
	shrink []int
}

// minShrunk is the narrowest a cut column gets.
const minShrunk = 8

func (t *table) add(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	t.rows = append(t.rows, cells)
}

// terminalWidth is the width of the terminal f is, or 0 if it is none: a
// pipe or file gets whole lines.
func terminalWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0
	}
	return int(ws.Col)
}

// write writes the table with two spaces between columns. If width is not
// zero and the table is wider, the shrinkable columns are cut, widest
// first, down to minShrunk, and cut cells end in "…".
func (t *table) write(w io.Writer, width int) error {
	widths := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	if width > 0 {
		total := 2 * (len(widths) - 1)
		for _, n := range widths {
			total += n
		}
		for total > width {
			widest := -1
			for _, i := range t.shrink {
				if widths[i] > minShrunk && (widest < 0 || widths[i] > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				break // as narrow as it gets
			}
			widths[widest]--
			total--
		}
	}
	var b strings.Builder
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			c = cut(c, widths[i])
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cut shortens s to n runes, the last one "…" if it was cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
