// Command gen releases the kubectl plugin (kubectl serin) for krew: it
// builds cmd/serin for each platform krew installs on, packs each build as
// kubectl-serin in its own tar.gz, and writes the krew manifest naming
// those archives at the release's download URL with their SHA-256.
// `make krew VERSION=v1.2.3` runs it:
//
//	go run ./deploy/krew/gen -version v1.2.3 -out bin/krew -o deploy/krew/serin.yaml
//
// Upload bin/krew/*.tar.gz to the release, then submit the manifest to
// krew-index. Every file's modification time comes from -source-date-epoch,
// so that two runs on one commit give the same archives and manifest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "krew: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o.Build = goBuild(o.Go, o.Version)
	if err := Release(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "krew: %v\n", err)
		return 1
	}
	fmt.Printf("krew manifest %s (version %s), archives in %s\n", o.Manifest, o.Version, o.OutDir)
	return 0
}

// semver is the version krew accepts: v, then MAJOR.MINOR.PATCH, then an
// optional pre-release or build.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// parseFlags reads the flags into Options. A version that is not a release
// tag is refused: krew would refuse the manifest, and a build named after a
// commit is no release.
func parseFlags(args []string) (Options, error) {
	fs := flag.NewFlagSet("krew", flag.ContinueOnError)
	var o Options
	var epoch int64
	fs.StringVar(&o.Version, "version", "", "the release tag, v1.2.3 (required)")
	fs.StringVar(&o.Download, "download", "", "the URL the archives are downloaded from (default https://github.com/serin-dev/serin/releases/download/VERSION)")
	fs.StringVar(&o.OutDir, "out", "bin/krew", "directory for the builds and archives")
	fs.StringVar(&o.Manifest, "o", "deploy/krew/serin.yaml", "the manifest to write")
	fs.StringVar(&o.Go, "go", "go", "the go command")
	fs.Int64Var(&epoch, "source-date-epoch", 0, "modification time of the archives' files, in seconds since 1970 (SOURCE_DATE_EPOCH)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := checkVersion(o.Version); err != nil {
		return Options{}, err
	}
	if o.Download == "" {
		o.Download = "https://github.com/serin-dev/serin/releases/download/" + o.Version
	}
	o.ModTime = time.Unix(epoch, 0).UTC()
	return o, nil
}

// checkVersion refuses a version krew would not take.
func checkVersion(v string) error {
	switch {
	case v == "":
		return errors.New("missing -version: give the release tag, e.g. -version v1.2.3 (make krew VERSION=v1.2.3)")
	case !semver.MatchString(v):
		return fmt.Errorf("-version %q: krew needs a release tag such as v1.2.3 (make krew VERSION=v1.2.3)", v)
	}
	return nil
}
