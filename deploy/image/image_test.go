package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testOptions builds from this checkout, as `make image` does from the root.
func testOptions() Options {
	return Options{
		Version:   "v0.0.0-imagetest",
		Revision:  "0123456789abcdef0123456789abcdef01234567",
		Created:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ModuleDir: "../..",
		Arch:      "amd64",
	}
}

// buildLayout runs the whole build (go build included) into a new OCI
// layout under t.TempDir, then reads it back from disk.
func buildLayout(t *testing.T, opts Options, dir string) (v1.Image, v1.Hash) {
	t.Helper()
	img, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	digest, err := WriteLayout(dir, img, opts.Reference())
	if err != nil {
		t.Fatalf("WriteLayout: %v", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("read layout %s: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("layout %s holds %d manifests, want 1", dir, len(im.Manifests))
	}
	m := im.Manifests[0]
	if m.Digest != digest {
		t.Errorf("layout's manifest is %s, WriteLayout said %s", m.Digest, digest)
	}
	wantAnn := map[string]string{
		"org.opencontainers.image.ref.name": opts.Version,
		"io.containerd.image.name":          "ghcr.io/serin-dev/serin:" + opts.Version,
	}
	if !maps.Equal(m.Annotations, wantAnn) {
		t.Errorf("index annotations = %v, want %v", m.Annotations, wantAnn)
	}
	read, err := idx.Image(m.Digest)
	if err != nil {
		t.Fatalf("image %s from layout: %v", m.Digest, err)
	}
	return read, digest
}

// TestImage builds the image twice from this checkout and checks what a
// cluster will run: the config, every file of the file system with its
// mode and owner, the digest of a rebuild, and the binary itself.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/serin twice")
	}
	opts := testOptions()
	dir := filepath.Join(t.TempDir(), "image")
	img, digest := buildLayout(t, opts, dir)

	t.Run("config", func(t *testing.T) { checkConfig(t, img, opts) })
	files := layerFiles(t, img)
	t.Run("files", func(t *testing.T) { checkFiles(t, files, opts) })
	t.Run("binary", func(t *testing.T) { checkBinary(t, files["serin"].data, opts.Version) })

	t.Run("rebuild has the same digest", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "image")
		if _, again := buildLayout(t, opts, other); again != digest {
			t.Errorf("two builds of one tree: %s and %s", digest, again)
		}
		// Written over the first layout, the rebuild replaces it: one
		// manifest, the same digest (buildLayout checks both).
		if _, again := buildLayout(t, opts, dir); again != digest {
			t.Errorf("rebuild over the layout: %s, want %s", again, digest)
		}
	})

	t.Run("docker tarball", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "serin-image.tar")
		if err := WriteTarball(path, img, opts.Reference()); err != nil {
			t.Fatal(err)
		}
		tb, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			t.Fatalf("read tarball: %v", err)
		}
		for _, f := range []func(v1.Image) (v1.Hash, error){v1.Image.ConfigName, firstLayerDigest} {
			want, _ := f(img)
			if got, err := f(tb); err != nil || got != want {
				t.Errorf("tarball: %s, %v; want %s as in the layout", got, err, want)
			}
		}
	})
}

func firstLayerDigest(img v1.Image) (v1.Hash, error) {
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		return v1.Hash{}, errors.Join(err, errors.New("no layer"))
	}
	return ls[0].Digest()
}

func checkConfig(t *testing.T, img v1.Image, opts Options) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/serin"}) || c.Cmd != nil || c.WorkingDir != "/" {
		t.Errorf("user %q entrypoint %q cmd %q workdir %q; want 65532:65532 [/serin] none /", c.User, c.Entrypoint, c.Cmd, c.WorkingDir)
	}
	if len(c.Env) != 0 || len(c.ExposedPorts) != 0 || len(c.Volumes) != 0 {
		t.Errorf("env %q ports %v volumes %v; want none", c.Env, c.ExposedPorts, c.Volumes)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(opts.Created) {
		t.Errorf("platform %s/%s created %s; want linux/amd64 %s", cf.OS, cf.Architecture, cf.Created.Time, opts.Created)
	}
	want := map[string]string{
		"org.opencontainers.image.title":       "serin",
		"org.opencontainers.image.description": "Progressive delivery controller for Istio canaries",
		"org.opencontainers.image.version":     "v0.0.0-imagetest",
		"org.opencontainers.image.revision":    "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.source":      "https://github.com/serin-dev/serin",
		"org.opencontainers.image.created":     "2026-01-02T03:04:05Z",
	}
	if !maps.Equal(c.Labels, want) {
		t.Errorf("labels = %v\nwant %v", c.Labels, want)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("manifest %s, config %s, layers %v: want one OCI gzip layer", m.MediaType, m.Config.MediaType, m.Layers)
	}
	if !maps.Equal(m.Annotations, want) {
		t.Errorf("manifest annotations = %v\nwant the labels", m.Annotations)
	}
}

// file is one tar entry of the layer.
type file struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("layer tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[h.Name]; dup {
			t.Errorf("%s twice in the layer", h.Name)
		}
		files[h.Name] = file{hdr: h, data: data}
	}
}

func checkFiles(t *testing.T, files map[string]file, opts Options) {
	wantModes := map[string]int64{
		"etc/":                              0o755,
		"etc/ssl/":                          0o755,
		"etc/ssl/certs/":                    0o755,
		"serin":                             0o755,
		"etc/ssl/certs/ca-certificates.crt": 0o644,
		"etc/passwd":                        0o644,
		"etc/group":                         0o644,
	}
	names := slices.Sorted(maps.Keys(files))
	if want := slices.Sorted(maps.Keys(wantModes)); !slices.Equal(names, want) {
		t.Fatalf("files in the image:\n%q\nwant exactly\n%q", names, want)
	}
	for _, sh := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/apt", "sbin/apk"} {
		if _, ok := files[sh]; ok {
			t.Errorf("the image has %s", sh)
		}
	}
	for name, f := range files {
		h := f.hdr
		dir := strings.HasSuffix(name, "/")
		if dir && h.Typeflag != tar.TypeDir || !dir && h.Typeflag != tar.TypeReg {
			t.Errorf("%s: type %c", name, h.Typeflag)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
			t.Errorf("%s: owner %d:%d (%s:%s), want root", name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.Mode != wantModes[name] || h.Mode&0o022 != 0 {
			t.Errorf("%s: mode %o, want %o (writable by root only)", name, h.Mode, wantModes[name])
		}
		if !h.ModTime.Equal(opts.Created) {
			t.Errorf("%s: mtime %s, want SOURCE_DATE_EPOCH %s", name, h.ModTime, opts.Created)
		}
	}
	ca, err := os.ReadFile(DefaultCACerts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"].data, ca) {
		t.Errorf("the image's CA bundle differs from %s", DefaultCACerts)
	}
	if p := string(files["etc/passwd"].data); !strings.Contains(p, "\nnonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532:\n%s", p)
	}
	if g := string(files["etc/group"].data); !strings.Contains(g, "\nnonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot 65532:\n%s", g)
	}
}

// checkBinary runs the serin extracted from the layer, and checks that it
// carries the zone database (time/tzdata): the image has no zoneinfo.
func checkBinary(t *testing.T, bin []byte, version string) {
	path := filepath.Join(t.TempDir(), "serin")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(path, arg).CombinedOutput()
		if err != nil || string(out) != version+"\n" {
			t.Errorf("serin %s = %q, %v; want %q", arg, out, err, version+"\n")
		}
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	zip, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Fatal(err)
	}
	// time/tzdata embeds this zip as it is; its first entry's header is a
	// signature no other package carries.
	if !bytes.Contains(bin, zip[:64]) {
		t.Error("the binary does not embed Go's zoneinfo.zip: cmd/serin lost its time/tzdata import")
	}
}

// TestBadInput checks that every missing or malformed input is refused by
// name before anything is compiled or written.
func TestBadInput(t *testing.T) {
	good := []string{"-version", "v1.2.3", "-revision", "abc", "-source-date-epoch", "1700000000"}
	for _, tc := range []struct {
		name string
		args []string
		env  string // SOURCE_DATE_EPOCH
		want string
	}{
		{"no version", []string{"-revision", "abc", "-source-date-epoch", "1"}, "", "missing version"},
		{"no revision", []string{"-version", "v1", "-source-date-epoch", "1"}, "", "missing revision"},
		{"no epoch", []string{"-version", "v1", "-revision", "abc"}, "", "SOURCE_DATE_EPOCH is not set"},
		{"bad epoch", []string{"-version", "v1", "-revision", "abc"}, "yesterday", `SOURCE_DATE_EPOCH "yesterday"`},
		{"negative epoch", []string{"-version", "v1", "-revision", "abc", "-source-date-epoch", "-5"}, "", `SOURCE_DATE_EPOCH "-5"`},
		{"version not a tag", []string{"-version", "v1+dirty", "-revision", "abc", "-source-date-epoch", "1"}, "", `version "v1+dirty" is not a valid image tag`},
		{"extra argument", append(slices.Clone(good), "controller"), "", "unexpected arguments"},
		{"unknown flag", append(slices.Clone(good), "-push"), "", "-push"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			_, _, _, err := parseFlags(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
	t.Run("good flags", func(t *testing.T) {
		opts, out, tarPath, err := parseFlags(good)
		if err != nil || opts.Created != time.Unix(1700000000, 0).UTC() || out != "bin/image" || tarPath != "" {
			t.Errorf("parseFlags(%q) = %+v %q %q %v", good, opts, out, tarPath, err)
		}
	})

	t.Run("missing CA bundle", func(t *testing.T) {
		opts := testOptions()
		opts.CACerts = filepath.Join(t.TempDir(), "ca-certificates.crt")
		opts.Go = "/nonexistent/go" // compiling would fail differently
		_, err := Build(context.Background(), opts)
		if err == nil || !strings.Contains(err.Error(), opts.CACerts+" does not exist") || !strings.Contains(err.Error(), "ca-certificates") {
			t.Errorf("Build = %v, want the bundle's path and the package to install", err)
		}
	})
	t.Run("CA bundle without certificates", func(t *testing.T) {
		opts := testOptions()
		opts.CACerts = filepath.Join(t.TempDir(), "ca-certificates.crt")
		opts.Go = "/nonexistent/go"
		if err := os.WriteFile(opts.CACerts, []byte("not PEM\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
			t.Errorf("Build = %v, want a refusal of the bundle", err)
		}
	})
	t.Run("output dir that is not a layout", func(t *testing.T) {
		dir := t.TempDir()
		keep := filepath.Join(dir, "notes.txt")
		if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := WriteLayout(dir, nil, "ghcr.io/serin-dev/serin:v1")
		if err == nil || !strings.Contains(err.Error(), "is not an OCI image layout (it holds notes.txt)") {
			t.Errorf("WriteLayout = %v, want a refusal", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%s holds %d entries after the refusal, want notes.txt alone", dir, len(entries))
		}
	})
}
