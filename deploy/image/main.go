// Command image builds serin's container image without a container engine:
// it compiles cmd/serin static, puts it in one layer from scratch with the CA
// bundle and a minimal /etc/passwd and /etc/group, and writes the image as an
// OCI image layout (a directory that crane, skopeo, oras and containerd read)
// and, optionally, as a `docker load` tarball. `make image` runs it:
//
//	go run ./deploy/image -version v1.2.3 -revision <commit> -out bin/image -tar bin/serin-image.tar
//
// The image's created time and every file's modification time come from
// SOURCE_DATE_EPOCH (the Makefile passes the commit's time), so that two
// builds of one commit have one digest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	opts, out, tarPath, err := parseFlags(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	img, err := Build(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		return 1
	}
	ref := opts.Reference()
	digest, err := WriteLayout(out, img, ref)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		return 1
	}
	fmt.Printf("%s@%s\n  OCI image layout: %s\n", ref, digest, out)
	if tarPath != "" {
		if err := WriteTarball(tarPath, img, ref); err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
			return 1
		}
		fmt.Printf("  docker load tarball: %s\n", tarPath)
	}
	return 0
}

// parseFlags reads the flags into Options. A flag that does not parse, or a
// missing version, revision or SOURCE_DATE_EPOCH, is an error: an image
// labelled with a guess is worse than none.
func parseFlags(args []string) (opts Options, out, tarPath string, err error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&opts.Version, "version", "", "version stamped into the binary and the tag (required)")
	fs.StringVar(&opts.Revision, "revision", "", "git commit of the source, for the revision label (required)")
	fs.StringVar(&opts.Repository, "repository", DefaultRepository, "image repository the tag belongs to")
	fs.StringVar(&opts.ModuleDir, "module", ".", "directory of serin's go.mod")
	fs.StringVar(&opts.Go, "go", "go", "go command that compiles cmd/serin")
	fs.StringVar(&opts.Arch, "arch", runtime.GOARCH, "GOARCH of the image (the OS is linux)")
	fs.StringVar(&opts.CACerts, "ca-certs", DefaultCACerts, "PEM bundle of CA certificates copied into the image")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"),
		"Unix seconds used as the image's created time and its files' mtime (default $SOURCE_DATE_EPOCH)")
	fs.StringVar(&out, "out", "bin/image", "directory of the OCI image layout (replaced if it is one)")
	fs.StringVar(&tarPath, "tar", "", "also write a `docker load` tarball here")
	if err = fs.Parse(args); err != nil {
		return opts, "", "", err
	}
	if fs.NArg() > 0 {
		return opts, "", "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if opts.Created, err = parseEpoch(*epoch); err != nil {
		return opts, "", "", err
	}
	return opts, out, tarPath, opts.validate()
}

// parseEpoch reads SOURCE_DATE_EPOCH as the reproducible-builds
// specification defines it: decimal Unix seconds.
func parseEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH is not set (pass -source-date-epoch, e.g. $(git log -1 --format=%%ct))")
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want non-negative Unix seconds", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}
