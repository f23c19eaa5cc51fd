package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBuildStatic(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	res, err := BuildStatic(&a, StaticOptions{Binary: bin, Name: "example.invalid/pause:t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildStatic(&b, StaticOptions{Binary: bin, Name: "example.invalid/pause:t"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds of the same binary differ")
	}
	blobs := map[string][]byte{}
	tr := tar.NewReader(&a)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		blobs[h.Name] = data
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(blobs["blobs/sha256/"+res.Config.Encoded()], &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/pause"}) {
		t.Errorf("entrypoint %v, want [/pause]", cfg.Config.Entrypoint)
	}
	var files []string
	lr := tar.NewReader(bytes.NewReader(blobs["blobs/sha256/"+res.Layer.Encoded()]))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		if h.Name == "pause" && h.Mode&0o111 == 0 {
			t.Errorf("pause is not executable: %o", h.Mode)
		}
	}
	if !slices.Contains(files, "pause") {
		t.Errorf("layer has %v, no pause", files)
	}
	if _, err := BuildStatic(io.Discard, StaticOptions{Binary: bin}); err == nil {
		t.Error("BuildStatic without a name succeeded")
	}
}
