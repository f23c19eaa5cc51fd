package boundedread

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, read := range []func(string, int64) ([]byte, error){File, NoFollow} {
		if data, err := read(file, 5); err != nil || string(data) != "12345" {
			t.Errorf("read(file, 5) = %q, %v", data, err)
		}
		if _, err := read(file, 4); err == nil || err.Error() != "read "+file+": larger than 4 bytes" {
			t.Errorf("read(file, 4): %v, want it refused as larger", err)
		}
		// Refused by the descriptor, without waiting for a writer.
		for _, p := range []string{fifo, dir} {
			if _, err := read(p, 5); err == nil || err.Error() != "read "+p+": not a regular file" {
				t.Errorf("read(%s): %v, want not a regular file", p, err)
			}
		}
		if _, err := read(filepath.Join(dir, "missing"), 5); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "open ") {
			t.Errorf("read(missing): %v, want an open error wrapping ErrNotExist", err)
		}
	}
	if data, err := File(link, 5); err != nil || string(data) != "12345" {
		t.Errorf("File(link) = %q, %v, want the target", data, err)
	}
	if _, err := NoFollow(link, 5); !errors.Is(err, unix.ELOOP) {
		t.Errorf("NoFollow(link): %v, want ELOOP", err)
	}
}
