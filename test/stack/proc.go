package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// errPortClash marks a start that failed because a port picked as free was
// taken in the meantime; the caller picks new ports and tries again.
var errPortClash = errors.New("port already in use")

// proc is one child process of the stack.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	log     io.Writer     // where stop reports a process that needed SIGKILL
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // valid after done is closed
}

// startProc starts bin with args, its output going to dir/<name>.log. The child
// gets its own process group and is killed when the test binary dies.
func startProc(dir, name, bin string, args ...string) (*proc, error) {
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
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopGrace, then sends SIGKILL and waits for
// the process to be reaped. Stopping an exited process is a no-op.
func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		return fmt.Errorf("SIGTERM %s (pid %d): %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	if p.log != nil {
		fmt.Fprintf(p.log, "[stack] %s (pid %d) ignored SIGTERM for %v; sending SIGKILL\n", p.name, p.pid(), stopGrace)
	}
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		return fmt.Errorf("SIGKILL %s (pid %d): %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.pid())
	}
}

// failure builds a start error for the process: the cause, the exit status if
// it died, and the tail of its log. It wraps errPortClash when the log says a
// port was taken.
func (p *proc) failure(cause error) error {
	tail := logTail(p.logPath, 30)
	status := ""
	if p.exited() {
		status = fmt.Sprintf(" (exited: %v)", p.waitErr)
	}
	err := fmt.Errorf("%s (pid %d)%s: %w\n--- tail of %s ---\n%s", p.name, p.pid(), status, cause, p.logPath, tail)
	if p.exited() && strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errPortClash, err)
	}
	return err
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// waitReady polls check every 100ms until it returns nil, the process exits,
// the timeout passes or ctx ends. Errors carry the tail of the process's log.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if p.exited() {
			return p.failure(errors.New("exited before it was ready"))
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return p.failure(fmt.Errorf("not ready after %v: %w (last check: %v)", timeout, ctx.Err(), last))
		case <-tick.C:
		}
	}
}

// httpOK returns a readiness check that GETs url and wants a 200.
func httpOK(client *http.Client, url string, header http.Header) func(context.Context) error {
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
