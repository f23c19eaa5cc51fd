package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

// runPs prints the container's processes: their pids with --format json,
// else the lines of the host's ps(1) (with `ps -ef`, or the options after
// the id) for them, under ps's own header, as runc does. containerd's Top
// parses that table.
func runPs(g *globals, args []string) error {
	f := newFlags("ps")
	// As runc: what follows the id is ps's, flags included.
	f.inOrder = true
	format := "table"
	f.stringVar(&format, "format, f", "select one of: table or json")
	pos, err := f.parse(args, atLeast(1))
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, pos[0])
	if err != nil {
		return err
	}
	pids, err := c.Pids()
	if err != nil {
		return err
	}
	switch format {
	case "table":
	case "json":
		return json.NewEncoder(os.Stdout).Encode(pids)
	default:
		return errors.New("invalid format option")
	}
	psArgs := pos[1:]
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	pidIndex := slices.Index(strings.Fields(lines[0]), "PID")
	if pidIndex < 0 {
		return errors.New("couldn't find PID field in ps output")
	}
	fmt.Println(lines[0])
	for _, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if pidIndex >= len(fields) {
			return fmt.Errorf("unable to parse pid from ps line %q", line)
		}
		p, err := strconv.Atoi(fields[pidIndex])
		if err != nil {
			return fmt.Errorf("unable to parse pid: %w", err)
		}
		if slices.Contains(pids, p) {
			fmt.Println(line)
		}
	}
	return nil
}
