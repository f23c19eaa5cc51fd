package cgroups

import (
	"os"
	"slices"
	"testing"
)

// recorder is a Manager that records the calls drain makes; its Pids
// returns the next of pids (an empty list once they run out).
type recorder struct {
	Manager
	pids  [][]int
	err   error
	calls []string
}

func (r *recorder) Pids() ([]int, error) {
	r.calls = append(r.calls, "pids")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.pids) == 0 {
		return nil, nil
	}
	p := r.pids[0]
	r.pids = r.pids[1:]
	return p, nil
}
func (r *recorder) Freeze() error { r.calls = append(r.calls, "freeze"); return nil }
func (r *recorder) Thaw() error   { r.calls = append(r.calls, "thaw"); return nil }

// The usual delete: the init has exited and its cgroup is empty. drain
// reads it once and neither freezes nor thaws it.
func TestDrainEmptyCgroup(t *testing.T) {
	r := &recorder{}
	if err := drain(r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pids"}; !slices.Equal(r.calls, want) {
		t.Errorf("calls %v, want %v", r.calls, want)
	}
}

// Processes left: frozen, listed again (one may have forked meanwhile),
// killed, thawed, waited for. The pids are of no process (pid_max is
// below 1<<22), so the SIGKILLs reach nothing.
func TestDrainKillsWhatIsLeft(t *testing.T) {
	const gone = 1<<22 + 1
	r := &recorder{pids: [][]int{{gone}, {gone, gone + 1}, {gone + 1}}}
	if err := drain(r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pids", "freeze", "pids", "thaw", "pids", "pids"}; !slices.Equal(r.calls, want) {
		t.Errorf("calls %v, want %v", r.calls, want)
	}
}

// A cgroup that systemd removed while it was read is drained.
func TestDrainGone(t *testing.T) {
	r := &recorder{err: os.ErrNotExist}
	if err := drain(r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pids"}; !slices.Equal(r.calls, want) {
		t.Errorf("calls %v, want %v", r.calls, want)
	}
}
