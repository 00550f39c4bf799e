package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"time"
)

// passwd and group name root and nonroot. The image runs as the numeric
// 65532:65532, so the runtime needs neither file, but the binary does:
// Go's os/user (pure Go, no cgo) reads them, and klog's log file names and
// controller-runtime's kubeconfig lookup when $HOME is unset call
// user.Current(), which fails for a uid with no entry. A `kubectl debug`
// container sharing the process namespace also shows the names. Home is
// "/" so that no home directory is needed; /sbin/nologin does not exist,
// which is the point.
const (
	passwd = "root:x:0:0:root:/:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nonroot:x:65532:\n"
)

// entry is one file or directory of the image's file system.
type entry struct {
	name string // relative to /, directories end in /
	mode int64
	data []byte
}

// rootfs returns the layer's tar: the parent directories, the binary, the
// CA bundle, passwd and group, in that order, all owned by root and
// writable by root only, with mtime t. Nothing else: no shell, no package
// manager, no /tmp (the Deployment's root file system is read-only and
// serin writes no files).
func rootfs(t time.Time, bin, caCerts []byte) ([]byte, error) {
	entries := []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "serin", mode: 0o755, data: bin},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caCerts},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: t,
			Uname:   "root",
			Gname:   "root",
			// USTAR keeps the header free of PAX access and change times.
			Format: tar.FormatUSTAR,
		}
		if e.name[len(e.name)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return buf.Bytes(), nil
}
