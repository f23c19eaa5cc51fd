package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	ocgroups "github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// TestTreePidsCgroupGoneWhileRead: a cgroup below the container's that is
// removed while the tree is read (a concurrent delete, the container's own
// cleanup) counts as empty, as it was; delete failed with "read
// .../cgroup.procs: no such device" when the rmdir came between opening
// and reading cgroup.procs. Each case removes the child at that point
// through the real kernel.
func TestTreePidsCgroupGoneWhileRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	hierarchy := mountPoint("pids")
	if _, err := os.Stat(filepath.Join(hierarchy, "cgroup.procs")); err != nil {
		t.Skip("no cgroup v1 pids hierarchy on this host")
	}
	root := filepath.Join(hierarchy, fmt.Sprintf("hostnet-cgroups-test-gone-%d", os.Getpid()))
	child := filepath.Join(root, "child")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeTree(root); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
	})
	if err := ocgroups.WriteCgroupProc(root, sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}

	for name, readChild := range map[string]func(t *testing.T) ([]int, error){
		// Opened, then removed, then read: the kernel says ENODEV.
		"removed after open": func(t *testing.T) ([]int, error) {
			f, err := os.Open(filepath.Join(child, "cgroup.procs"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Rmdir(child); err != nil {
				t.Fatal(err)
			}
			s := bufio.NewScanner(f)
			for s.Scan() {
			}
			if !errors.Is(s.Err(), unix.ENODEV) {
				t.Fatalf("reading a removed cgroup's cgroup.procs: %v, want ENODEV", s.Err())
			}
			return nil, s.Err()
		},
		// Listed, then removed before it is read: ENOENT.
		"removed after listing": func(t *testing.T) ([]int, error) {
			if err := unix.Rmdir(child); err != nil {
				t.Fatal(err)
			}
			return ocgroups.GetPids(child)
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.Mkdir(child, 0o755); err != nil {
				t.Fatal(err)
			}
			pids, err := treePids(root, func(dir string) ([]int, error) {
				if dir == child {
					return readChild(t)
				}
				return ocgroups.GetPids(dir)
			})
			if err != nil {
				t.Fatalf("treePids: %v", err)
			}
			if !slices.Equal(pids, []int{sleep.Process.Pid}) {
				t.Errorf("pids %v, want [%d]", pids, sleep.Process.Pid)
			}
		})
	}

	// The cgroup itself gone is still "does not exist", which delete
	// takes as nothing to do.
	if _, err := treePids(filepath.Join(root, "none"), ocgroups.GetPids); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("treePids of a missing cgroup: %v, want ErrNotExist", err)
	}
}
