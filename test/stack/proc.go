package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long the stack's processes get between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// errPortClash marks a start that failed because a port picked as free was
// taken in the meantime; the caller picks new ports and tries again.
var errPortClash = errors.New("port already in use")

// Process is a child process whose output goes to a log file. It runs in its
// own process group, so that a Ctrl-C in the terminal reaches only the parent,
// which then stops its children in order, and it is killed when the parent
// dies. A goroutine reaps it as soon as it exits.
type Process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	onKill  func()        // called by Stop before it sends SIGKILL; may be nil
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // valid after done is closed
}

// StartProcess starts bin with args in dir, its output going to
// dir/<name>.log. name identifies the process in errors.
func StartProcess(dir, name, bin string, args ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name returns the name the process was started with.
func (p *Process) Name() string { return p.name }

// Signal sends sig to the process, e.g. SIGSTOP and SIGCONT.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogPath returns the path of the file that holds the process's output.
func (p *Process) LogPath() string { return p.logPath }

// Done returns a channel that is closed once the process has exited and been
// reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the process exited, as exec.Cmd.Wait reports it: nil for
// exit status 0, and nil while it still runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.waitErr
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// OnKill makes Stop call f when the process has ignored SIGTERM for the grace
// period, just before it sends SIGKILL, so that the caller can say so. Call
// it before Stop.
func (p *Process) OnKill(f func()) { p.onKill = f }

// killWait bounds the wait for a Process to be reaped after SIGKILL.
const killWait = 5 * time.Second

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL and waits for the
// process to be reaped. Stopping an exited process is a no-op.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		return fmt.Errorf("SIGTERM %s (pid %d): %w", p.name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if p.onKill != nil {
		p.onKill()
	}
	if err := p.cmd.Process.Kill(); err != nil && !p.Exited() {
		return fmt.Errorf("SIGKILL %s (pid %d): %w", p.name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.PID())
	}
}

// WaitReady polls check every 100ms until it returns nil, the process exits,
// the timeout passes or ctx ends. Each check gets 2 s. The error says which
// happened, with the last check's error; it does not stop the process.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.Exited() {
			return errors.New("exited before it was ready")
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last := check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w (last check: %v)", timeout, ctx.Err(), last)
		case <-p.done:
		case <-tick.C:
		}
	}
}

// HTTPReady returns a readiness check for WaitReady that GETs url with header
// and wants a 200.
func HTTPReady(client *http.Client, url string, header http.Header) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// waitReady waits for p as Process.WaitReady does; on failure it stops p and
// returns the error of failure.
func waitReady(ctx context.Context, p *Process, timeout time.Duration, check func(context.Context) error) error {
	if err := p.WaitReady(ctx, timeout, check); err != nil {
		return errors.Join(failure(p, err), p.Stop(stopGrace))
	}
	return nil
}

// failure builds a start error for the process: the cause, the exit status if
// it died, and the tail of its log. It wraps errPortClash when the log says a
// port was taken.
func failure(p *Process, cause error) error {
	tail := p.LogTail(30)
	status := ""
	if p.Exited() {
		status = fmt.Sprintf(" (exited: %v)", p.Err())
	}
	err := fmt.Errorf("%s (pid %d)%s: %w\n--- tail of %s ---\n%s", p.name, p.PID(), status, cause, p.logPath, tail)
	if p.Exited() && strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errPortClash, err)
	}
	return err
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment ago.
// They are held open together so that the n are distinct, then released; a
// process may still lose the race for one, hence errPortClash and retries.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// withPortRetry runs start up to 3 times while it fails with errPortClash.
func withPortRetry(start func() error) error {
	var err error
	for range 3 {
		if err = start(); !errors.Is(err, errPortClash) {
			return err
		}
	}
	return err
}

// hostPort formats 127.0.0.1:port.
func hostPort(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
