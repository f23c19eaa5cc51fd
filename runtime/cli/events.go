package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hostnet-dev/hostnet/runtime/cgroups"
	"github.com/hostnet-dev/hostnet/runtime/container"
)

// runEvents prints the container's stats, once with --stats, else every
// interval along with OOM events, until the container stops.
func runEvents(g *globals, args []string) error {
	f := newFlags("events")
	once, interval := false, 5*time.Second
	f.durationVar(&interval, "interval", "set the stats collection interval")
	f.boolVar(&once, "stats", "display the container's stats then exit")
	pos, err := f.parse(args, exactly(1))
	if err != nil {
		return err
	}
	id := pos[0]
	if interval <= 0 {
		return errors.New("duration interval must be greater than 0")
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	cg, err := c.LoadCgroup()
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	enc := json.NewEncoder(os.Stdout)
	emitStats := func() error {
		s, err := cg.Stats()
		if err != nil {
			return err
		}
		return enc.Encode(struct {
			Type string         `json:"type"`
			ID   string         `json:"id"`
			Data *cgroups.Stats `json:"data"`
		}{"stats", id, s})
	}
	if once {
		return emitStats()
	}
	ooms, _ := cg.OOMKills()
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	next := time.Now()
	for c.Status() != container.Stopped {
		if time.Now().After(next) {
			if err := emitStats(); err != nil {
				return err
			}
			next = time.Now().Add(interval)
		}
		if n, err := cg.OOMKills(); err == nil && n > ooms {
			ooms = n
			if err := enc.Encode(struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			}{"oom", id}); err != nil {
				return err
			}
		}
		<-poll.C
	}
	return nil
}
