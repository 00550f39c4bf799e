package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// WriteLayout writes img as the one image of an OCI image layout at dir and
// returns its manifest digest, the one a registry will report once it is
// pushed. The index names it twice: org.opencontainers.image.ref.name is
// the tag (skopeo's oci:dir:tag), io.containerd.image.name the full
// reference (containerd's import). An existing layout at dir is replaced,
// so that a rebuild holds one image; any other existing dir is refused.
func WriteLayout(dir string, img v1.Image, ref string) (v1.Hash, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := clearLayout(dir); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.Name(),
	})); err != nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return img.Digest()
}

// clearLayout removes dir if it is an OCI image layout, and refuses to
// touch it if it is anything else.
func clearLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%s exists and is not an OCI image layout (it holds %s); not replacing it", dir, strings.Join(names, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("replace OCI layout %s: %w", dir, err)
	}
	return nil
}

// WriteTarball writes img tagged ref as a `docker load` tarball (also read
// by `podman load` and `kind load image-archive`).
func WriteTarball(path string, img v1.Image, ref string) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	return nil
}
