package stack

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// RepoRoot returns the directory that holds serin's go.mod. It is found from
// this source file's location, so it works from any test's working directory.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("stack: runtime.Caller failed; cannot locate the repository")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("stack: no go.mod above " + filepath.Dir(file))
		}
		dir = parent
	}
}

// CacheDir returns ${SERIN_CACHE:-$HOME/.cache/serin}, where install.sh keeps
// its builds.
func CacheDir() string {
	if c := os.Getenv("SERIN_CACHE"); c != "" {
		return c
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "serin")
}

// BinDir returns ${SERIN_CACHE:-$HOME/.cache/serin}/bin, where install.sh
// puts the binaries it builds (kube-apiserver, kubectl, jaeger,
// pilot-discovery, istioctl).
func BinDir() string { return filepath.Join(CacheDir(), "bin") }

// binaries lists, per install.sh component, the files that component provides.
func binaries(component string) ([]string, error) {
	switch component {
	case "etcd":
		return []string{systemBin("etcd")}, nil
	case "prometheus":
		return []string{systemBin("prometheus")}, nil
	case "chromium":
		return []string{systemBin("chromium")}, nil
	case "kube":
		return []string{filepath.Join(BinDir(), "kube-apiserver"), filepath.Join(BinDir(), "kubectl")}, nil
	case "jaeger":
		return []string{filepath.Join(BinDir(), "jaeger")}, nil
	case "istio":
		return []string{filepath.Join(BinDir(), "pilot-discovery"), IstioctlPath()}, nil
	}
	return nil, fmt.Errorf("unknown component %q (want etcd, prometheus, kube, jaeger, istio or chromium)", component)
}

// systemBin is the path of a binary installed from Debian: on PATH, or in
// /usr/bin when PATH is minimal.
func systemBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return filepath.Join("/usr/bin", name)
}

// missing returns the components among the given ones with a binary absent.
func missing(components []string) ([]string, error) {
	var out []string
	for _, c := range components {
		bins, err := binaries(c)
		if err != nil {
			return nil, err
		}
		for _, b := range bins {
			if fi, err := os.Stat(b); err != nil || fi.Mode()&0o111 == 0 {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}

// Ensure makes sure the binaries of the given install.sh components (etcd,
// prometheus, kube, jaeger, istio, chromium) exist. It runs test/tools/install.sh for
// the missing ones, streaming its progress to log (os.Stderr when nil). A file
// lock in the cache directory keeps concurrent test binaries from building the
// same thing twice.
func Ensure(ctx context.Context, log io.Writer, components ...string) error {
	if log == nil {
		log = os.Stderr
	}
	need, err := missing(components)
	if err != nil || len(need) == 0 {
		return err
	}
	unlock, err := lockCache(log)
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have installed them while we waited for the lock.
	if need, err = missing(need); err != nil || len(need) == 0 {
		return err
	}
	script := filepath.Join(RepoRoot(), "test", "tools", "install.sh")
	fmt.Fprintf(log, "[stack] missing %v: running %s %v\n", need, script, need)
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, need...)...)
	cmd.Dir = RepoRoot()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// On cancellation kill the script's process group, its go builds included.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install.sh %v: %w", need, err)
	}
	if still, _ := missing(need); len(still) > 0 {
		return fmt.Errorf("install.sh %v succeeded but %v still missing", need, still)
	}
	return nil
}

// lockCache takes an exclusive flock on the cache directory's install lock.
func lockCache(log io.Writer) (unlock func(), err error) {
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create cache dir %s: %w", CacheDir(), err)
	}
	path := filepath.Join(CacheDir(), "install.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(log, "[stack] waiting for another install (lock %s)\n", path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() { f.Close() }, nil
}
