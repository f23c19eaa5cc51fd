package task

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"golang.org/x/sys/unix"
)

// oomWatcher publishes TaskOOM for each OOM kill in a container's memory
// cgroup. The kernel's oom_kill counter is what is reported, so that an OOM
// is published once however it is noticed: by the cgroup's notification, or
// by flush, which runs before the init's TaskExit goes out so that the OOM
// that killed a container always precedes its exit.
type oomWatcher struct {
	id      string
	send    func(any)
	counter string // memory.oom_control (v1) or memory.events (v2)
	wake    *os.File

	mu       sync.Mutex
	reported uint64
	done     chan struct{}
}

// watchOOM watches the container's memory cgroup; OOM kills from now on
// are reported once start is called.
func watchOOM(id string, cg *containerCgroup, send func(any)) (*oomWatcher, error) {
	fd, err := cg.oomEventFD()
	if err != nil {
		return nil, fmt.Errorf("failed to watch OOM events of the memory cgroup: %w", err)
	}
	// Non-blocking, so that the runtime poller can interrupt the read on close.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("failed to watch OOM events: %w", err)
	}
	w := &oomWatcher{
		id:      id,
		send:    send,
		counter: cg.oomCounter,
		wake:    os.NewFile(uintptr(fd), "oom-events"),
		done:    make(chan struct{}),
	}
	// Kills counted before now are not this container's: its cgroup may
	// be one it joined rather than made.
	w.reported, _ = oomKills(w.counter)
	return w, nil
}

// start publishes OOM kills from now on.
func (w *oomWatcher) start() {
	go w.run()
}

func (w *oomWatcher) run() {
	defer close(w.done)
	buf := make([]byte, 4096)
	for {
		if _, err := w.wake.Read(buf); err != nil {
			return // closed
		}
		// cgroup v1 notifies before the OOM killer picks its victim; give
		// the counter a moment to catch up. flush catches a late one.
		for range 10 {
			if w.flush() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// flush publishes TaskOOM if the cgroup counted an OOM kill not published
// yet, and reports whether it did.
func (w *oomWatcher) flush() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := oomKills(w.counter)
	if err != nil || n <= w.reported {
		return false // a cgroup that is gone has nothing more to report
	}
	w.reported = n
	w.send(&eventstypes.TaskOOM{ContainerID: w.id})
	return true
}

// close stops watching; the watcher's goroutine has ended when it returns.
// Call it once, after start.
func (w *oomWatcher) close() {
	w.wake.Close()
	<-w.done
}

// oomKills reads the oom_kill count from memory.oom_control or memory.events.
func oomKills(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("oom_kill ")); ok {
			return strconv.ParseUint(string(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no oom_kill count in %s", path)
}
