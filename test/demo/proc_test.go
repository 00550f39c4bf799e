package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serin-dev/serin/test/stack"
)

// binaries are the serin and demo binaries the tests run, built once.
type binaries struct{ serin, demo string }

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinaries builds bin/serin and bin/serin-demo into a temp dir, as
// `make demo` does, the first time a test asks.
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "serin-demo-bin-"); buildErr != nil {
			return
		}
		built = binaries{serin: filepath.Join(binDir, "serin"), demo: filepath.Join(binDir, "serin-demo")}
		for _, b := range []struct{ out, pkg string }{{built.serin, "./cmd/serin"}, {built.demo, "./test/demo"}} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = stack.RepoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
				return
			}
		}
	})
	must(t, buildErr)
	return built
}

// demoProc is the demo running as a subprocess.
type demoProc struct {
	cmd       *exec.Cmd
	logPath   string
	readyFile string
	done      chan struct{} // closed once it has exited and been reaped
}

// startDemo runs the demo with args and TMPDIR=tmp, so that the stack's data
// dir, which every stack process names on its command line, is under tmp.
// Its output goes to a file, shown when the test fails. A demo still running
// at the end of the test gets SIGINT, then SIGKILL.
func startDemo(t *testing.T, bins binaries, tmp string, args ...string) *demoProc {
	t.Helper()
	logPath := filepath.Join(tmp, fmt.Sprintf("demo-%d.log", time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	must(t, err)
	defer logFile.Close()
	cmd := exec.Command(bins.demo, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	d := &demoProc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	for i, a := range args {
		if a == "-ready-file" && i+1 < len(args) {
			d.readyFile = args[i+1]
		}
	}
	go func() { _ = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo output (%s):\n%s", logPath, tail(d.output(), 80))
		}
		if !d.exited() {
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-d.done:
			case <-time.After(exitDeadline):
				_ = cmd.Process.Kill()
				<-d.done
			}
		}
	})
	return d
}

// output is everything the demo printed so far.
func (d *demoProc) output() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *demoProc) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitReady waits for the ready file and decodes it.
func (d *demoProc) waitReady(t *testing.T) readyInfo {
	t.Helper()
	var info readyInfo
	deadline := time.Now().Add(readyDeadline)
	for {
		if b, err := os.ReadFile(d.readyFile); err == nil {
			must(t, json.Unmarshal(b, &info))
			return info
		}
		if d.exited() {
			t.Fatalf("the demo exited (%v) before it was ready; output:\n%s", d.cmd.ProcessState, tail(d.output(), 60))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready file %s after %v; output:\n%s", d.readyFile, readyDeadline, tail(d.output(), 60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wait waits for the demo to exit and returns its exit code.
func (d *demoProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("the demo still runs after %v; output:\n%s", timeout, tail(d.output(), 40))
		return -1
	}
}

// interruptAndWait sends SIGINT, as Ctrl-C does, and wants exit code 0.
func (d *demoProc) interruptAndWait(t *testing.T) {
	t.Helper()
	begin := time.Now()
	must(t, d.cmd.Process.Signal(syscall.SIGINT))
	if code := d.wait(t, exitDeadline); code != 0 {
		t.Fatalf("exit code after SIGINT = %d, want 0; output:\n%s", code, tail(d.output(), 40))
	}
	t.Logf("stopped %v after SIGINT", time.Since(begin).Round(100*time.Millisecond))
}
