package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// pluginName is the plugin's name in krew (kubectl krew install serin),
// and binName the executable kubectl runs for `kubectl serin`; cmd/serin
// acts as the plugin when run under that name.
const (
	pluginName = "serin"
	binName    = "kubectl-serin"
)

// Platform is one os and architecture that krew installs on.
type Platform struct{ OS, Arch string }

// Platforms are those the plugin is released for.
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"},
}

// bin is the executable's name on p.
func (p Platform) bin() string {
	if p.OS == "windows" {
		return binName + ".exe"
	}
	return binName
}

// archive is the file name of p's archive.
func (p Platform) archive() string { return fmt.Sprintf("%s_%s_%s.tar.gz", binName, p.OS, p.Arch) }

// Options say what Release builds and where it writes.
type Options struct {
	// Version is the release tag, v1.2.3.
	Version string
	// Download is the URL the archives are served from, without the
	// archive's name.
	Download string
	// OutDir receives each platform's build and archive.
	OutDir string
	// Manifest is the path of the krew manifest written.
	Manifest string
	// Go is the go command.
	Go string
	// ModTime is the archives' files' modification time.
	ModTime time.Time
	// Build builds the plugin for p into out. goBuild is the real one.
	Build func(ctx context.Context, p Platform, out string) error
}

// goBuild builds cmd/serin for a platform, static and without file paths,
// stamped with version.
func goBuild(goCmd, version string) func(ctx context.Context, p Platform, out string) error {
	return func(ctx context.Context, p Platform, out string) error {
		cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false",
			"-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/serin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/serin for %s/%s: %w\n%s", p.OS, p.Arch, err, stderr.Bytes())
		}
		return nil
	}
}

// Release builds and packs every platform and writes the manifest. The
// manifest is written last, so that it never names an archive that is
// not there.
func Release(ctx context.Context, o Options) error {
	if err := checkVersion(o.Version); err != nil {
		return err
	}
	sums := map[Platform]string{}
	for _, p := range Platforms {
		dir := filepath.Join(o.OutDir, p.OS+"-"+p.Arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		bin := filepath.Join(dir, p.bin())
		fmt.Fprintf(os.Stderr, "krew: building %s/%s\n", p.OS, p.Arch)
		if err := o.Build(ctx, p, bin); err != nil {
			return err
		}
		sum, err := pack(bin, p.bin(), filepath.Join(o.OutDir, p.archive()), o.ModTime)
		if err != nil {
			return fmt.Errorf("pack %s/%s: %w", p.OS, p.Arch, err)
		}
		sums[p] = sum
	}
	m, err := manifest(o.Version, strings.TrimSuffix(o.Download, "/"), sums)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.Manifest), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.Manifest, m, 0o644)
}

// pack writes the archive holding bin as name, executable, and returns
// its SHA-256 in hex. Its bytes depend on bin's and modTime only.
func pack(bin, name, archive string, modTime time.Time) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: modTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return "", err
	}
	if _, err := tw.Write(data); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(archive, b.Bytes(), 0o644); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// The krew manifest (krew.googlecontainertools.github.com/v1alpha2 Plugin),
// with the fields the plugin uses.
type (
	Plugin struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   Metadata   `json:"metadata"`
		Spec       PluginSpec `json:"spec"`
	}
	Metadata struct {
		Name string `json:"name"`
	}
	PluginSpec struct {
		Version          string         `json:"version"`
		Homepage         string         `json:"homepage"`
		ShortDescription string         `json:"shortDescription"`
		Description      string         `json:"description"`
		Caveats          string         `json:"caveats"`
		Platforms        []PlatformSpec `json:"platforms"`
	}
	PlatformSpec struct {
		Selector Selector   `json:"selector"`
		URI      string     `json:"uri"`
		Sha256   string     `json:"sha256"`
		Files    []FileSpec `json:"files"`
		Bin      string     `json:"bin"`
	}
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	FileSpec struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
)

const (
	description = `Steers serin's progressive delivery of Istio canaries with your
kubeconfig: lists rollouts and shows their phase, step, weight, analysis
checks and releases; follows one live; pauses, resumes, promotes, aborts
and retries them; and releases new images of the Deployment a rollout
delivers. It talks to the Kubernetes API with your credentials and RBAC,
so it needs no serin endpoint or token.
`
	caveats = `Needs serin's CRD in the cluster, and RBAC: reading needs get, list and
watch on rollouts.serin.dev (the serin-view ClusterRole, aggregated into
Kubernetes' view role), steering needs patch on them (serin-edit,
aggregated into edit), and set-image needs patch on the Deployment (edit).
`
)

// manifest is the krew manifest of version, with each platform's archive
// at download and its SHA-256 from sums.
func manifest(version, download string, sums map[Platform]string) ([]byte, error) {
	m := Plugin{
		APIVersion: "krew.googlecontainertools.github.com/v1alpha2", Kind: "Plugin",
		Metadata: Metadata{Name: pluginName},
		Spec: PluginSpec{
			Version: version, Homepage: "https://github.com/serin-dev/serin",
			ShortDescription: "Steer serin's Istio canary rollouts",
			Description:      description, Caveats: caveats,
		},
	}
	for _, p := range Platforms {
		m.Spec.Platforms = append(m.Spec.Platforms, PlatformSpec{
			Selector: Selector{MatchLabels: map[string]string{"os": p.OS, "arch": p.Arch}},
			URI:      download + "/" + p.archive(), Sha256: sums[p],
			Files: []FileSpec{{From: p.bin(), To: "."}}, Bin: p.bin(),
		})
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode the krew manifest: %w", err)
	}
	return append([]byte("# Generated by `make krew VERSION="+version+"` (deploy/krew/gen). Do not edit.\n"), b...), nil
}
