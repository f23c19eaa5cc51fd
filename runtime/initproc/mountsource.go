package initproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A mount source travels outside the JSON stream: the parent answers a
// request with one sendmsg(2), a JSON line with the error, if any, and the
// descriptor attached (SCM_RIGHTS). The init has sent its request and reads
// nothing else meanwhile, so its JSON decoder, which reads ahead, has
// nothing of the answer buffered; nor does the parent send anything else
// until the init writes again.

type mountSourceResult struct {
	Error string `json:"error,omitempty"`
}

// SendMountSource answers a mount source request on the parent's end of
// the sync socket: f, or the error that kept the parent from opening it.
func SendMountSource(sync *os.File, f *os.File, err error) error {
	var res mountSourceResult
	var rights []byte
	if err != nil {
		res.Error = err.Error()
	} else {
		rights = unix.UnixRights(int(f.Fd()))
	}
	msg, merr := json.Marshal(res)
	if merr != nil {
		return merr
	}
	if err := unix.Sendmsg(int(sync.Fd()), append(msg, '\n'), rights, nil, 0); err != nil {
		return fmt.Errorf("send mount source: %w", err)
	}
	return nil
}

// mountSource asks the parent for the source of the bind mount
// Spec.Mounts[index].
func (c *channel) mountSource(index int) (*os.File, error) {
	if err := c.enc.Encode(Reply{MountSource: &index}); err != nil {
		return nil, fmt.Errorf("request mount source: %w", err)
	}
	var line []byte
	var file *os.File
	buf := make([]byte, 4096)
	for !bytes.HasSuffix(line, []byte{'\n'}) {
		n, fd, err := RecvFd(int(c.sync.Fd()), buf)
		if err != nil {
			if file != nil {
				file.Close()
			}
			return nil, fmt.Errorf("receive mount source: %w", err)
		}
		if fd >= 0 {
			if file == nil {
				file = os.NewFile(uintptr(fd), "mount source")
			} else {
				unix.Close(fd)
			}
		}
		if n == 0 {
			if file != nil {
				file.Close()
			}
			return nil, errors.New("receive mount source: the runtime closed the sync socket")
		}
		line = append(line, buf[:n]...)
	}
	var res mountSourceResult
	if err := json.Unmarshal(line, &res); err != nil {
		return nil, fmt.Errorf("receive mount source: %w", err)
	}
	if res.Error != "" {
		if file != nil {
			file.Close()
		}
		return nil, errors.New(res.Error)
	}
	if file == nil {
		return nil, errors.New("receive mount source: no descriptor attached")
	}
	return file, nil
}
