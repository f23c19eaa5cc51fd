package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// StaticOptions configure BuildStatic.
type StaticOptions struct {
	// Binary is the path of a statically linked program; it becomes /<base
	// name> in the image and the image's entrypoint.
	Binary string
	// Name is the image reference recorded in the archive.
	Name string
}

// WriteStaticFile builds a one-binary image with BuildStatic and writes it
// as an OCI image-layout tar to path, replacing any previous file
// atomically.
func WriteStaticFile(path string, opts StaticOptions) (Result, error) {
	return writeAtomic(path, func(w io.Writer) (Result, error) { return BuildStatic(w, opts) })
}

// BuildStatic writes an OCI image-layout tar stream to w whose only layer
// holds one static binary (plus the empty mount points a runtime expects)
// and whose entrypoint runs it: the shape of Kubernetes' pause image. Like
// Build, it is reproducible.
func BuildStatic(w io.Writer, opts StaticOptions) (Result, error) {
	if opts.Binary == "" || opts.Name == "" {
		return Result{}, fmt.Errorf("image: BuildStatic needs Binary and Name")
	}
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return Result{}, fmt.Errorf("read %s: %w", opts.Binary, err)
	}
	base := path.Base(filepath.ToSlash(opts.Binary))

	var buf bytes.Buffer
	lw := newTarWriter(&buf)
	for _, d := range []string{"dev", "etc", "proc", "sys"} {
		lw.dir(d)
	}
	lw.file(base, 0o755, bin)
	if err := lw.close(); err != nil {
		return Result{}, err
	}
	layer := buf.Bytes()
	layerDesc := descriptor(ocispec.MediaTypeImageLayer, layer)

	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	config, err := json.Marshal(ocispec.Image{
		Platform: platform,
		Config: ocispec.ImageConfig{
			Entrypoint: []string{"/" + base},
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

// writeLayout writes the image-layout tar of a one-layer image.
func writeLayout(w io.Writer, name string, platform ocispec.Platform, configDesc ocispec.Descriptor, config []byte, layerDesc ocispec.Descriptor, layer []byte) (Result, error) {
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return Result{}, err
	}
	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifest)
	manifestDesc.Platform = &platform

	tag := name
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	}
	indexEntry := manifestDesc
	indexEntry.Annotations = map[string]string{
		// containerd's importer names the image after this annotation.
		"io.containerd.image.name": name,
		ocispec.AnnotationRefName:  tag,
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{indexEntry},
	})
	if err != nil {
		return Result{}, err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return Result{}, err
	}
	tw := newTarWriter(w)
	tw.dir("blobs")
	tw.dir("blobs/sha256")
	for _, blob := range [][]byte{layer, config, manifest} {
		tw.file(path.Join("blobs/sha256", digest.FromBytes(blob).Encoded()), 0o644, blob)
	}
	tw.file(ocispec.ImageIndexFile, 0o644, index)
	tw.file(ocispec.ImageLayoutFile, 0o644, layout)
	if err := tw.close(); err != nil {
		return Result{}, err
	}
	return Result{Name: name, Manifest: manifestDesc, Config: configDesc.Digest, Layer: layerDesc.Digest}, nil
}
