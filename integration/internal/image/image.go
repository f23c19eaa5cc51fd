// Package image builds a minimal OCI image from the host's static busybox.
//
// The image has a single uncompressed layer holding /bin/busybox, one
// symlink per applet, a root user and the empty mount points a container
// runtime expects. Every timestamp, owner and ordering is fixed, so the same
// busybox binary always gives the same digests and `ctr images import` of
// the archive is a no-op the second time.
package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultName is the reference the tests and the demo import the image as.
const DefaultName = "docker.io/hostnet/busybox:test"

// DefaultBusybox is where Debian's busybox-static package installs the binary.
const DefaultBusybox = "/bin/busybox"

// epoch is the modification time of every file in the image.
var epoch = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// Options configure Build.
type Options struct {
	// Busybox is the path of a statically linked busybox; DefaultBusybox if empty.
	Busybox string
	// Name is the image reference recorded in the archive; DefaultName if empty.
	Name string
}

// Result describes a built image.
type Result struct {
	Name     string
	Manifest ocispec.Descriptor
	Config   digest.Digest
	Layer    digest.Digest
}

// WriteFile builds the image and writes it as an OCI image-layout tar to
// path, replacing any previous file atomically.
func WriteFile(path string, opts Options) (Result, error) {
	return writeAtomic(path, func(w io.Writer) (Result, error) { return Build(w, opts) })
}

// writeAtomic writes what build produces to a temp file beside path and
// renames it over path.
func writeAtomic(path string, build func(io.Writer) (Result, error)) (Result, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mkimage-*")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(tmp.Name())
	res, err := build(tmp)
	if err != nil {
		tmp.Close()
		return Result{}, err
	}
	if err := tmp.Close(); err != nil {
		return Result{}, err
	}
	return res, os.Rename(tmp.Name(), path)
}

// Build writes the image as an OCI image-layout tar stream to w.
func Build(w io.Writer, opts Options) (Result, error) {
	if opts.Busybox == "" {
		opts.Busybox = DefaultBusybox
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	layer, err := rootfsLayer(opts.Busybox)
	if err != nil {
		return Result{}, err
	}
	layerDesc := descriptor(ocispec.MediaTypeImageLayer, layer)

	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	config, err := json.Marshal(ocispec.Image{
		Platform: platform,
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        []string{"sh"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	})
	if err != nil {
		return Result{}, err
	}
	configDesc := descriptor(ocispec.MediaTypeImageConfig, config)
	return writeLayout(w, opts.Name, platform, configDesc, config, layerDesc, layer)
}

func descriptor(mediaType string, blob []byte) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(blob))),
		Size:      int64(len(blob)),
	}
}

// rootfsLayer returns the uncompressed layer tar for a busybox rootfs.
func rootfsLayer(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	applets, err := listApplets(busybox)
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	tw := newTarWriter(&buf)
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "run", "sys", "usr", "usr/bin", "usr/sbin", "var"} {
		tw.dir(d)
	}
	tw.dirMode("tmp", 0o1777)
	tw.dirMode("var/tmp", 0o1777)
	tw.file("bin/busybox", 0o755, bin)
	for _, a := range applets {
		tw.symlink(path.Join("bin", a), "busybox")
	}
	tw.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	tw.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	tw.file("etc/hostname", 0o644, nil)
	tw.file("etc/hosts", 0o644, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"))
	tw.file("etc/resolv.conf", 0o644, nil)
	if err := tw.close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// listApplets asks busybox for its applets, sorted and without "busybox".
func listApplets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		applets = append(applets, a)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", busybox)
	}
	slices.Sort(applets)
	return slices.Compact(applets), nil
}

// tarWriter writes entries with fixed metadata and remembers the first error.
type tarWriter struct {
	tw  *tar.Writer
	err error
}

func newTarWriter(w io.Writer) *tarWriter {
	return &tarWriter{tw: tar.NewWriter(w)}
}

func (t *tarWriter) header(h *tar.Header) {
	if t.err != nil {
		return
	}
	h.ModTime = epoch
	h.Format = tar.FormatPAX
	h.Uname, h.Gname = "root", "root"
	t.err = t.tw.WriteHeader(h)
}

func (t *tarWriter) dir(name string) { t.dirMode(name, 0o755) }

func (t *tarWriter) dirMode(name string, mode int64) {
	t.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
}

func (t *tarWriter) symlink(name, target string) {
	t.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

func (t *tarWriter) file(name string, mode int64, data []byte) {
	t.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))})
	if t.err == nil {
		_, t.err = t.tw.Write(data)
	}
}

func (t *tarWriter) close() error {
	if t.err != nil {
		return t.err
	}
	return t.tw.Close()
}
