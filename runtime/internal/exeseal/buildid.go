package exeseal

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
)

// buildIDReadSize is how much of a binary readBuildID reads: the Go linker
// puts its build ID note right after the ELF program headers, and cmd/go
// reads the same 32 KiB to find it.
const buildIDReadSize = 32 << 10

// readBuildID returns the Go build ID of the ELF binary f, or "" if it has
// none. The build ID ends with a hash of the binary's content
// (cmd/go/internal/work's buildID), so it names one build: two binaries
// that carry the same one are the same.
func readBuildID(f *os.File) (string, error) {
	buf := make([]byte, buildIDReadSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return goBuildID(buf[:n]), nil
}

// goBuildID finds the Go build ID note (name "Go", type 4) in a PT_NOTE
// segment of a 64-bit little-endian ELF image's first bytes, data. Every
// architecture the runtime forks on natively is one; elsewhere there is no
// ID and the runtime copies itself per process.
func goBuildID(data []byte) string {
	const (
		ptNote        = 4
		goBuildIDNote = 4
	)
	if len(data) < 64 || string(data[:4]) != "\x7fELF" || data[4] != 2 || data[5] != 1 {
		return ""
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := le.Uint64(data[32:]), uint64(le.Uint16(data[54:])), uint64(le.Uint16(data[56:]))
	if phentsize < 56 {
		return ""
	}
	size := uint64(len(data))
	for i := uint64(0); i < phnum; i++ {
		ph := phoff + i*phentsize
		if ph > size || size-ph < 56 {
			break
		}
		if le.Uint32(data[ph:]) != ptNote {
			continue
		}
		off, filesz := le.Uint64(data[ph+8:]), le.Uint64(data[ph+32:])
		if off > size || filesz > size-off {
			continue
		}
		for note := data[off : off+filesz]; len(note) >= 12; {
			namesz, descsz, typ := uint64(le.Uint32(note)), uint64(le.Uint32(note[4:])), le.Uint32(note[8:])
			name, desc := 12+align4(namesz), 12+align4(namesz)+align4(descsz)
			if namesz > 1<<16 || descsz > 1<<16 || desc > uint64(len(note)) {
				break
			}
			if typ == goBuildIDNote && namesz == 4 && string(note[12:16]) == "Go\x00\x00" {
				return string(note[name : name+descsz])
			}
			note = note[desc:]
		}
	}
	return ""
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }
