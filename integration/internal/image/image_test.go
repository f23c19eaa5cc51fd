package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

func TestBuildIsDeterministic(t *testing.T) {
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("no busybox: %v", err)
	}
	var a, b bytes.Buffer
	ra, err := Build(&a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Build(&b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Manifest.Digest != rb.Manifest.Digest || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two builds differ: %s vs %s", ra.Manifest.Digest, rb.Manifest.Digest)
	}

	names := map[string]bool{}
	tr := tar.NewReader(&a)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	for _, want := range []string{"oci-layout", "index.json", "blobs/sha256/" + ra.Manifest.Digest.Encoded(), "blobs/sha256/" + ra.Layer.Encoded()} {
		if !names[want] {
			t.Errorf("archive has no %s", want)
		}
	}
}
