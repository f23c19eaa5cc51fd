package initproc

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// sameFile tells whether two descriptors are the same open file.
func sameFile(t *testing.T, a, b int) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// socketpair returns a connected pair of unix stream sockets, closed at
// cleanup.
func socketpair(t *testing.T) [2]int {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(pair[0]); unix.Close(pair[1]) })
	return pair
}

func TestSendRecvFdOverSocketpair(t *testing.T) {
	pair := socketpair(t)
	f, err := os.CreateTemp(t.TempDir(), "sent")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if err := SendFd(pair[0], []byte("hello"), int(f.Fd())); err != nil {
		t.Fatalf("SendFd: %v", err)
	}
	buf := make([]byte, 64)
	n, fd, err := RecvFd(pair[1], buf)
	if err != nil {
		t.Fatalf("RecvFd: %v", err)
	}
	if fd < 0 {
		t.Fatal("RecvFd: no descriptor received")
	}
	defer unix.Close(fd)
	if got := string(buf[:n]); got != "hello" {
		t.Errorf("message = %q, want %q", got, "hello")
	}
	if !sameFile(t, fd, int(f.Fd())) {
		t.Error("received descriptor is not the file sent")
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("received descriptor is not close-on-exec")
	}

	// A message without a descriptor: RecvFd says none (-1).
	if err := unix.Sendmsg(pair[0], []byte("x"), nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if n, fd, err := RecvFd(pair[1], buf); err != nil || n != 1 || fd != -1 {
		t.Errorf("RecvFd of a bare message = (%d, %d, %v), want (1, -1, nil)", n, fd, err)
	}
}

func TestRecvFdClosesExtraDescriptors(t *testing.T) {
	pair := socketpair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := unix.Sendmsg(pair[0], []byte("two"), unix.UnixRights(int(r.Fd()), int(w.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	n, fd, err := RecvFd(pair[1], make([]byte, 8))
	if err != nil || n != 3 || fd < 0 {
		t.Fatalf("RecvFd = (%d, %d, %v)", n, fd, err)
	}
	defer unix.Close(fd)
	if !sameFile(t, fd, int(r.Fd())) {
		t.Error("RecvFd kept a descriptor other than the first")
	}
	// The write end came along as the second descriptor: had RecvFd kept
	// it open, the read end would not see EOF.
	if got, err := unix.Read(int(r.Fd()), make([]byte, 1)); got != 0 || err != nil {
		t.Errorf("read of the pipe = (%d, %v), want EOF: the extra descriptor leaked", got, err)
	}
}

func TestDialSendFd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	done := make(chan error, 1)
	go func() { done <- DialSendFd(path, []byte("standard"), int(w.Fd())) }()
	conn, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.File()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	buf := make([]byte, 64)
	n, fd, err := RecvFd(int(raw.Fd()), buf)
	if err != nil || fd < 0 {
		t.Fatalf("RecvFd = (%d, %d, %v)", n, fd, err)
	}
	defer unix.Close(fd)
	if err := <-done; err != nil {
		t.Fatalf("DialSendFd: %v", err)
	}
	if got := string(buf[:n]); got != "standard" {
		t.Errorf("message = %q, want %q", got, "standard")
	}
	if !sameFile(t, fd, int(w.Fd())) {
		t.Error("received descriptor is not the one sent")
	}

	err = DialSendFd(filepath.Join(t.TempDir(), "absent"), nil, int(w.Fd()))
	if err == nil || !IsDialError(err) {
		t.Errorf("DialSendFd to a missing socket = %v, want a dial error", err)
	}
}
