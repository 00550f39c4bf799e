package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// fakeBuild writes a small stand-in for the plugin's build: compiling
// cmd/serin for five platforms takes minutes, and what is tested here is
// the packing and the manifest.
func fakeBuild(_ context.Context, p Platform, out string) error {
	return os.WriteFile(out, []byte("kubectl-serin for "+p.OS+"/"+p.Arch), 0o755)
}

// TestReleaseManifest: the manifest that make krew writes parses strictly
// as a krew Plugin named serin at the version, with one platform per
// os/arch released, each naming its archive at the download URL with the
// archive's SHA-256 and the executable kubectl runs, and each archive
// holds that executable.
func TestReleaseManifest(t *testing.T) {
	dir := t.TempDir()
	o := Options{Version: "v1.4.0", Download: "https://example.test/dl/v1.4.0/", OutDir: filepath.Join(dir, "out"),
		Manifest: filepath.Join(dir, "deploy", "krew", "serin.yaml"), ModTime: time.Unix(1700000000, 0), Build: fakeBuild}
	if err := Release(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(o.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m Plugin
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		t.Fatalf("the manifest does not parse: %v\n%s", err, data)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "serin" || m.Spec.Version != "v1.4.0" {
		t.Errorf("manifest %s %s %q version %q, want a krew v1alpha2 Plugin serin at v1.4.0", m.APIVersion, m.Kind, m.Metadata.Name, m.Spec.Version)
	}
	if m.Spec.ShortDescription == "" || m.Spec.Homepage == "" || !strings.Contains(m.Spec.Caveats, "serin-view") {
		t.Errorf("spec lacks a short description, homepage or the RBAC caveats: %+v", m.Spec)
	}
	var got []string
	for _, p := range m.Spec.Platforms {
		os_, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		got = append(got, os_+"/"+arch)
		bin := "kubectl-serin"
		if os_ == "windows" {
			bin += ".exe"
		}
		name := "kubectl-serin_" + os_ + "_" + arch + ".tar.gz"
		if p.URI != "https://example.test/dl/v1.4.0/"+name {
			t.Errorf("%s/%s: uri %q", os_, arch, p.URI)
		}
		if p.Bin != bin || !slices.Equal(p.Files, []FileSpec{{From: bin, To: "."}}) {
			t.Errorf("%s/%s: bin %q, files %+v; want %s", os_, arch, p.Bin, p.Files, bin)
		}
		archive, err := os.ReadFile(filepath.Join(o.OutDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(archive); p.Sha256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s/%s: sha256 %s, the archive's is %x", os_, arch, p.Sha256, sum)
		}
		if files := archived(t, filepath.Join(o.OutDir, name)); !slices.Equal(files, []string{bin + " 755 kubectl-serin for " + os_ + "/" + arch}) {
			t.Errorf("%s/%s: archive holds %q", os_, arch, files)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"}; !slices.Equal(got, want) {
		t.Errorf("platforms %v, want %v", got, want)
	}

	// Another run on the same builds writes the same bytes.
	before := data
	if err := Release(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(o.Manifest); string(after) != string(before) {
		t.Error("a second run wrote another manifest")
	}
}

// archived lists an archive's files as "name mode content".
func archived(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, fmt.Sprintf("%s %o %s", h.Name, h.Mode, b))
	}
}

// TestVersionRefused: a version that is not a release tag is refused
// before anything is built or written.
func TestVersionRefused(t *testing.T) {
	for _, v := range []string{"", "dev", "1.2.3", "c2c577f", "v1.2", "v1.2.3-dirty!"} {
		if _, err := parseFlags([]string{"-version", v}); err == nil || !strings.Contains(err.Error(), "-version") {
			t.Errorf("-version %q: %v, want a refusal naming -version", v, err)
		}
		dir := t.TempDir()
		built := false
		err := Release(t.Context(), Options{Version: v, OutDir: dir, Manifest: filepath.Join(dir, "serin.yaml"),
			Build: func(context.Context, Platform, string) error { built = true; return nil }})
		if entries, _ := os.ReadDir(dir); err == nil || built || len(entries) > 0 {
			t.Errorf("Release at %q: err %v, built %v, wrote %d files", v, err, built, len(entries))
		}
	}
	if o, err := parseFlags([]string{"-version", "v0.3.0-rc.1"}); err != nil || o.Download != "https://github.com/serin-dev/serin/releases/download/v0.3.0-rc.1" {
		t.Errorf("v0.3.0-rc.1: %+v, %v", o, err)
	}
}
