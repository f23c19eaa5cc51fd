//go:build cgo

package main

import (
	"debug/elf"
	"fmt"
	"os"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
)

// The container's init and every exec'd process start as this binary,
// executed by descriptor inside the container, where the host's dynamic
// loader does not exist: a dynamically linked build fails every create and
// exec with ENOENT from execveat. Say so at once instead. Only cgo builds
// can be dynamically linked, so a default (CGO_ENABLED=0) build skips this.
//
// Checked by the CLI only: the init and exec'd processes run where /proc may
// be the container's.
func init() {
	if len(os.Args) > 1 && os.Args[1] == initproc.Command {
		return
	}
	f, err := elf.Open("/proc/self/exe") // procfs-literal: the CLI, in the host's mount namespace
	if err != nil {
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			fmt.Fprintln(os.Stderr, "hostnet-runc: this binary is dynamically linked, but it runs inside containers as their init, where the host's dynamic loader does not exist: build it with CGO_ENABLED=0 (make build does) or link it statically")
			os.Exit(1)
		}
	}
}
