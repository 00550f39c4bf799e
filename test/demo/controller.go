package main

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

const (
	// controllerStopGrace is how long the controller gets between SIGTERM
	// and SIGKILL.
	controllerStopGrace = 10 * time.Second
	// controllerReadyTimeout bounds the wait for /readyz.
	controllerReadyTimeout = 60 * time.Second
)

// errPortClash marks a controller that lost its --http-addr port to another
// process between the pick and the listen; startController tries a new one.
var errPortClash = errors.New("port already in use")

// controllerConfig is what the controller child process needs.
type controllerConfig struct {
	Bin           string // the serin binary
	Dir           string // where its log goes
	Kubeconfig    string
	PrometheusURL string
	JaegerURL     string // Jaeger's HTTP query API
	TokenFile     string // the REST API's and the console's static tokens
}

// controller is a running `serin controller` child process.
type controller struct {
	cmd     *exec.Cmd
	addr    string // host:port of --http-addr
	logPath string
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // valid after done is closed
}

// startController starts `serin controller` on a free 127.0.0.1 port and
// waits until its /readyz answers 200. It tries another port if the one it
// picked was taken in the meantime.
func startController(ctx context.Context, cfg controllerConfig) (*controller, error) {
	var err error
	for range 3 {
		var c *controller
		c, err = tryController(ctx, cfg)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errPortClash) {
			return nil, err
		}
	}
	return nil, err
}

// tryController makes one attempt of startController. On failure the process
// is stopped.
func tryController(ctx context.Context, cfg controllerConfig) (*controller, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := spawnController(cfg, addr)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	return c, nil
}

// spawnController starts the process in its own process group (so that a
// Ctrl-C in the terminal reaches the demo only, which then stops it in
// order), killed if the demo dies, with its output in cfg.Dir.
func spawnController(cfg controllerConfig, addr string) (*controller, error) {
	logPath := filepath.Join(cfg.Dir, "serin-controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("controller log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(cfg.Bin, "controller",
		"--kubeconfig", cfg.Kubeconfig,
		"--http-addr", addr,
		"--prometheus-url", cfg.PrometheusURL,
		"--jaeger-url", cfg.JaegerURL,
		// The stack's Prometheus scrapes every second; the analysis windows
		// are sized from this.
		"--scrape-interval", "1s",
		"--auth", "static", "--api-token-file", cfg.TokenFile,
	)
	cmd.Dir = cfg.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		hint := ""
		if errors.Is(err, os.ErrNotExist) {
			hint = " (run `make build` first, or pass -serin PATH)"
		}
		return nil, fmt.Errorf("start the serin controller %s: %w%s", cfg.Bin, err, hint)
	}
	c := &controller{cmd: cmd, addr: addr, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// pid is the controller's process ID.
func (c *controller) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has exited.
func (c *controller) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz every 200ms until it answers 200, the process
// exits, controllerReadyTimeout passes or ctx ends.
func (c *controller) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, controllerReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + c.addr + "/readyz"
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("no answer yet")
	for {
		if c.exited() {
			return c.failure(errors.New("exited before it was ready"))
		}
		if last = getOK(ctx, client, url); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return c.failure(fmt.Errorf("not ready after %v: %w (last: %v)", controllerReadyTimeout, ctx.Err(), last))
		case <-c.done:
		case <-tick.C:
		}
	}
}

// getOK GETs url and wants a 200.
func getOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
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

// failure builds an error naming the controller, its exit status if it has
// exited, and the tail of its log, with a hint for the known causes.
func (c *controller) failure(cause error) error {
	tail := logTail(c.logPath, 20)
	status := ""
	if c.exited() {
		status = fmt.Sprintf(" (exited: %v)", c.waitErr)
	}
	hint := ""
	if strings.Contains(tail, "flag provided but not defined") {
		hint = "\nhint: this serin binary is older than the demo's flags; rebuild it with `make build`"
	}
	err := fmt.Errorf("serin controller (pid %d, --http-addr %s)%s: %w%s\n--- tail of %s ---\n%s",
		c.pid(), c.addr, status, cause, hint, c.logPath, tail)
	if c.exited() && strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errPortClash, err)
	}
	return err
}

// stop sends SIGTERM, waits up to controllerStopGrace, then sends SIGKILL and
// waits for the process to be reaped. Stopping an exited controller is a
// no-op.
func (c *controller) stop() error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !c.exited() {
		return fmt.Errorf("SIGTERM the serin controller (pid %d): %w", c.pid(), err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(controllerStopGrace):
	}
	fmt.Fprintf(os.Stderr, "serin-demo: the controller (pid %d) ignored SIGTERM for %v; sending SIGKILL\n", c.pid(), controllerStopGrace)
	if err := c.cmd.Process.Kill(); err != nil && !c.exited() {
		return fmt.Errorf("SIGKILL the serin controller (pid %d): %w", c.pid(), err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("the serin controller (pid %d) still runs after SIGKILL", c.pid())
	}
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port for the controller: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
