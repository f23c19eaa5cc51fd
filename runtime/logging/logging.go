// Package logging writes hostnet-runc's log the way runc does, so containerd
// and its shims can read it: with --log-format json, one JSON object per line
// with "level", "msg" and "time"; otherwise logfmt-style text.
package logging

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Logger is a minimal leveled logger; the runtime logs little, and pulling
// in a logging library would slow every invocation.
type Logger struct {
	w     io.Writer
	json  bool
	debug bool
}

// Open returns a logger appending to path, or writing to stderr when path is
// empty. format is "text" or "json".
func Open(path, format string, debug bool) (*Logger, error) {
	if format != "text" && format != "json" && format != "" {
		return nil, fmt.Errorf("invalid log format %q: must be text or json", format)
	}
	l := &Logger{w: os.Stderr, json: format == "json", debug: debug}
	if path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_SYNC|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log file %s: %w", path, err)
		}
		l.w = f
	}
	return l, nil
}

// Close closes the log file. The command line never does (it exits); a
// long-lived caller that opens the log per message (the shim's in-process
// launcher) must, or it leaks a descriptor each time.
func (l *Logger) Close() error {
	if c, ok := l.w.(io.Closer); ok && l.w != os.Stderr {
		return c.Close()
	}
	return nil
}

// ToStderr reports whether the log already goes to stderr.
func (l *Logger) ToStderr() bool { return l.w == os.Stderr }

func (l *Logger) Errorf(format string, args ...any) { l.write("error", format, args...) }
func (l *Logger) Warnf(format string, args ...any)  { l.write("warning", format, args...) }
func (l *Logger) Debugf(format string, args ...any) {
	if l.debug {
		l.write("debug", format, args...)
	}
}

func (l *Logger) write(level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	now := time.Now().Format(time.RFC3339Nano)
	var line []byte
	if l.json {
		line, _ = json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, now})
	} else {
		line = []byte("time=" + strconv.Quote(now) + " level=" + level + " msg=" + strconv.Quote(msg))
	}
	_, _ = l.w.Write(append(line, '\n'))
}
