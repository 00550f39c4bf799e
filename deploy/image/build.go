package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// DefaultRepository is where serin's images are published;
	// deploy/deployment.yaml names an image in it.
	DefaultRepository = "ghcr.io/serin-dev/serin"
	// DefaultCACerts is the bundle of Debian's ca-certificates package, the
	// first file Go's crypto/x509 reads on Linux, which is why the image
	// needs no SSL_CERT_FILE.
	DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"
	// sourceURL is the org.opencontainers.image.source label.
	sourceURL = "https://github.com/serin-dev/serin"
	// Nonroot is the user and group the image runs as, the uid distroless
	// images use, and the one deploy/deployment.yaml's securityContext sets.
	Nonroot = 65532
)

// Options says what to build. Every field but Repository, ModuleDir, Go and
// CACerts is required; Build refuses an image with a guessed label.
type Options struct {
	Version    string    // stamped into main.version and used as the tag
	Revision   string    // git commit of the source
	Created    time.Time // the image's created time and its files' mtime
	Repository string    // the repository of the tag, DefaultRepository if empty
	ModuleDir  string    // serin's module root, "." if empty
	Go         string    // the go command, "go" if empty
	Arch       string    // GOARCH; the OS is always linux
	CACerts    string    // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt
}

func (o *Options) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"version", o.Version}, {"revision", o.Revision}, {"arch", o.Arch}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if o.Created.IsZero() {
		missing = append(missing, "created time (SOURCE_DATE_EPOCH)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	// The version is an image tag too: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
	if len(o.Version) > 128 || strings.HasPrefix(o.Version, ".") || strings.HasPrefix(o.Version, "-") ||
		strings.ContainsFunc(o.Version, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.-", r))
		}) {
		return fmt.Errorf("version %q is not a valid image tag", o.Version)
	}
	return nil
}

func (o *Options) defaults() {
	if o.Repository == "" {
		o.Repository = DefaultRepository
	}
	if o.ModuleDir == "" {
		o.ModuleDir = "."
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.CACerts == "" {
		o.CACerts = DefaultCACerts
	}
}

// Reference is the image's name: the repository tagged with the version.
func (o Options) Reference() string {
	repo := o.Repository
	if repo == "" {
		repo = DefaultRepository
	}
	return repo + ":" + o.Version
}

// Labels are the image's OCI annotations, set both as config labels (what
// `docker inspect` and Kubernetes tooling show) and on the manifest (what
// registries such as ghcr.io read to link the source). There is no
// licenses label: the repository has no LICENSE file to name.
func (o Options) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "serin",
		"org.opencontainers.image.description": "Progressive delivery controller for Istio canaries",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

// Build compiles cmd/serin and returns the image: one layer on nothing.
func Build(ctx context.Context, opts Options) (v1.Image, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ca, err := readCACerts(opts.CACerts)
	if err != nil {
		return nil, err
	}
	bin, err := compile(ctx, opts)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(opts.Created, bin, ca)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return assemble(opts, layer)
}

// assemble puts the layer on an empty OCI image and sets the config.
func assemble(opts Options, layer v1.Layer) (v1.Image, error) {
	created := v1.Time{Time: opts.Created}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "go run ./deploy/image (serin, CA certificates, /etc/passwd, /etc/group)",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS, cf.Architecture = "linux", opts.Arch
	uid := fmt.Sprint(Nonroot)
	cf.Config = v1.Config{
		User:       uid + ":" + uid,
		Entrypoint: []string{"/serin"},
		// No Cmd: the binary is the controller and the rollout CLI, the
		// Deployment passes `controller` and its flags, and a bare
		// `docker run` printing the usage is more useful than a controller
		// that refuses to start without --prometheus-url.
		WorkingDir: "/",
		Labels:     opts.Labels(),
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return mutate.Annotations(img, opts.Labels()).(v1.Image), nil
}

// readCACerts reads the bundle and checks it holds certificates, so that a
// missing ca-certificates package fails here rather than as TLS errors in
// the cluster.
func readCACerts(path string) ([]byte, error) {
	pem, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA bundle %s does not exist: install Debian's ca-certificates package (apt-get install ca-certificates) or pass -ca-certs", path)
	}
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return pem, nil
}

// compile builds cmd/serin static and reproducibly: no cgo, no file paths
// (-trimpath), no VCS stamp (the revision is a label, and a VCS stamp
// fails in checkouts git will not read), no symbol tables.
func compile(ctx context.Context, opts Options) ([]byte, error) {
	dir, err := os.MkdirTemp("", "serin-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "serin")
	cmd := exec.CommandContext(ctx, opts.Go, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.version="+opts.Version, "-o", out, "./cmd/serin")
	cmd.Dir = opts.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+opts.Arch)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/serin in %s: %w\n%s", opts.ModuleDir, err, stderr.Bytes())
	}
	return os.ReadFile(out)
}
