package seccomp

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzCompile: the profile comes from the spec, which the pod author
// writes. Compile never panics, and a profile it accepts becomes a program
// the kernel would load (verifyProgram) whose verdict, for syscalls the
// profile names, values it compares with and arbitrary data, is the one
// the profile's documented semantics give (reference). The input is either
// a JSON profile (first byte even) or bytes a small decoder turns into a
// profile (odd), which reaches deep rule combinations much sooner.
func FuzzCompile(f *testing.F) {
	seed, _ := json.Marshal(defaultLikeProfile())
	f.Add(append([]byte{0}, seed...))
	f.Add([]byte{0, '{', '}'})
	f.Add([]byte(`0{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["lseek"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":4294967296,"op":"SCMP_CMP_LT"}]}]}`))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{1, 0xff, 0x80, 0x7f, 0x01, 0x33, 0x44, 0x02, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0xaa, 0xbb})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var p *specs.LinuxSeccomp
		if data[0]&1 == 0 {
			p = &specs.LinuxSeccomp{}
			if json.Unmarshal(data[1:], p) != nil {
				return
			}
		} else {
			p = decodeProfile(&byteReader{b: data[1:]})
		}
		filter, err := Compile(p)
		if err != nil {
			return
		}
		if err := verifyProgram(filter.prog); err != nil {
			t.Fatalf("profile %+v compiles to a program the kernel refuses: %v", p, err)
		}
		if again, err := Compile(p); err != nil || !slices.Equal(again.prog, filter.prog) {
			t.Fatalf("compiling %+v twice gives different programs (%v)", p, err)
		}
		for _, d := range probes(p, data) {
			got, _, err := execute(filter.prog, d)
			if err != nil {
				t.Fatalf("profile %+v, data %+v: %v", p, d, err)
			}
			if want := reference(p, d); got != want {
				t.Fatalf("profile %+v\ndata %+v: the filter returns %#x, the profile says %#x", p, d, got, want)
			}
		}
	})
}

// probes are the seccomp_data the verdicts are compared on: each syscall
// the profile names with the values its rules compare against (and their
// neighbours), foreign and x32 calls, and data read from the input.
func probes(p *specs.LinuxSeccomp, raw []byte) []seccompData {
	var out []seccompData
	for _, call := range p.Syscalls {
		for _, name := range call.Names {
			nr, ok := syscallNumbers[name]
			if !ok {
				continue
			}
			out = append(out, native(nr))
			for _, a := range call.Args {
				for _, v := range []uint64{a.Value - 1, a.Value, a.Value + 1, a.ValueTwo, a.ValueTwo | ^a.Value} {
					d := native(nr)
					d.args[a.Index%maxSyscallArgs] = v
					out = append(out, d)
				}
			}
		}
	}
	_, foreign := foreignArch()
	out = append(out, seccompData{nr: 1, arch: foreign}, native(x32SyscallBit|1), seccompData{nr: 0, arch: 0xdead})
	r := &byteReader{b: raw}
	for range 16 {
		d := native(uint32(r.u16()) % 600)
		switch r.byte() % 8 {
		case 0:
			d.arch = foreign
		case 1:
			d.nr |= x32SyscallBit
		}
		for i := range d.args {
			d.args[i] = r.value()
		}
		out = append(out, d)
	}
	return out
}

// byteReader hands out the fuzz input; past its end it returns zeros.
type byteReader struct{ b []byte }

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) u16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

// value is a boundary value or eight raw bytes.
func (r *byteReader) value() uint64 {
	if c := r.byte(); c < 0x80 {
		return boundary[int(c)%len(boundary)]
	}
	var b [8]byte
	for i := range b {
		b[i] = r.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

var (
	fuzzNames   = []string{"read", "write", "openat", "close", "getpid", "mmap", "ioctl", "clone", "socket", "kill", "lseek", "no_such_call", ""}
	fuzzActions = []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKillProcess, specs.ActTrap, specs.ActLog, specs.ActKill, specs.ActKillThread, specs.ActTrace, specs.ActNotify}
	fuzzOps     = []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual, "SCMP_CMP_BOGUS"}
)

func decodeProfile(r *byteReader) *specs.LinuxSeccomp {
	action := func() (specs.LinuxSeccompAction, *uint) {
		c := r.byte()
		a := fuzzActions[int(c&0x0f)%len(fuzzActions)]
		if c&0x10 != 0 {
			v := uint(r.u16())
			return a, &v
		}
		return a, nil
	}
	// A listener for the notify rules; ignored without them.
	p := &specs.LinuxSeccomp{ListenerPath: "/run/agent.sock"}
	p.DefaultAction, p.DefaultErrnoRet = action()
	archs := r.byte()
	foreign, _ := foreignArch()
	if archs&1 != 0 {
		p.Architectures = append(p.Architectures, foreign)
	}
	if archs&2 != 0 {
		p.Architectures = append(p.Architectures, specs.ArchX32)
	}
	if archs&4 != 0 {
		p.Architectures = append(p.Architectures, specs.ArchS390X)
	}
	for range int(r.byte() % 24) {
		var call specs.LinuxSyscall
		for range 1 + int(r.byte()%3) {
			call.Names = append(call.Names, fuzzNames[int(r.byte())%len(fuzzNames)])
		}
		call.Action, call.ErrnoRet = action()
		for range int(r.byte() % 5) {
			call.Args = append(call.Args, specs.LinuxSeccompArg{
				Index: uint(r.byte() % 7), Op: fuzzOps[int(r.byte())%len(fuzzOps)], Value: r.value(), ValueTwo: r.value(),
			})
		}
		p.Syscalls = append(p.Syscalls, call)
	}
	return p
}
