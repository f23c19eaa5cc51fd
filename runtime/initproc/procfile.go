package initproc

import (
	"fmt"
	"os"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	"golang.org/x/sys/unix"
)

// writeProcFile writes value to a procfs file named as the kernel documents
// it: /proc/sys/..., /proc/self/... or /proc/thread-self/.... The file is
// opened through a procfs instance of the runtime's own
// (filepath-securejoin's procfs handles), never through the /proc of the
// mount namespace the init is in: the container's may be missing, fake, or
// have something mounted over the file (CVE-2025-52881).
func writeProcFile(path, value string) error {
	f, err := openProcFile(path, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func openProcFile(path string, flags int) (*os.File, error) {
	sub, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return nil, fmt.Errorf("%s is not a procfs path", path)
	}
	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return nil, fmt.Errorf("open procfs: %w", err)
	}
	defer proc.Close()
	var handle *os.File
	if rest, ok := strings.CutPrefix(sub, "thread-self/"); ok {
		var closer procfs.ProcThreadSelfCloser
		handle, closer, err = proc.OpenThreadSelf(rest)
		if closer != nil {
			// The init runs locked to its thread anyway; the closer only
			// undoes OpenThreadSelf's own lock.
			defer closer()
		}
	} else if rest, ok := strings.CutPrefix(sub, "self/"); ok {
		handle, err = proc.OpenSelf(rest)
	} else {
		handle, err = proc.OpenRoot(sub)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer handle.Close()
	f, err := pathrs.Reopen(handle, flags)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// ownFdDir opens /proc/thread-self/fd in a procfs of the runtime's own: a
// descriptor of the init reopened through it is exactly that descriptor's
// file, whatever the container did to its /proc.
func ownFdDir() (*os.File, error) {
	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return nil, fmt.Errorf("open procfs: %w", err)
	}
	defer proc.Close()
	dir, closer, err := proc.OpenThreadSelf("fd/")
	if err != nil {
		return nil, fmt.Errorf("open /proc/thread-self/fd: %w", err)
	}
	// The init stays on its thread (Main locks it for good): the closer
	// only undoes OpenThreadSelf's own lock.
	closer()
	return dir, nil
}
