package ociruntime

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
)

// logEntry is one line of the runtime's --log-format json output.
type logEntry struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// lastError returns the message of the last "error" (or worse) entry in a
// JSON log, skipping lines that are not JSON: runtimes print panics and
// other raw text there too.
func lastError(r io.Reader) string {
	var msg string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Level {
		case "error", "fatal", "panic":
			if e.Msg != "" {
				msg = e.Msg
			}
		}
	}
	return msg
}

// logOffset is the current size of the log, so that an error can be looked
// for only in what the next runtime invocation writes.
func logOffset(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// lastErrorSince reads the last error written to the log at path after offset.
func lastErrorSince(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	return lastError(f)
}
