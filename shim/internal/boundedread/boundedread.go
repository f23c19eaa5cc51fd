// Package boundedread reads the small files the shim is pointed at (a
// CNI configuration list, nerdctl's records) without trusting the path:
// the file must be a regular one, told by its open descriptor, and is read
// up to a limit, so a FIFO, a device or a huge file named by mistake or by
// a client cannot hang or exhaust the shim.
package boundedread

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File reads at most limit bytes of the regular file at path. O_NONBLOCK:
// opening a FIFO does not wait for a writer; it is then refused by the
// descriptor's type. A symlink is followed, as for a file the node's
// administrator names.
func File(path string, limit int64) ([]byte, error) {
	return read(path, limit, 0)
}

// NoFollow is File without following a symlink at path's last component,
// for a path a client names.
func NoFollow(path string, limit int64) ([]byte, error) {
	return read(path, limit, unix.O_NOFOLLOW)
}

func read(path string, limit int64, flags int) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", limit)}
	}
	return data, nil
}
