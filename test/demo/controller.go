package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/serin-dev/serin/test/stack"
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
	IstiodURL     string // istiod's debug API, where serin follows weights into the proxies
}

// controller is a running `serin controller` child process.
type controller struct {
	proc *stack.Process
	addr string // host:port of --http-addr
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
	ready := stack.HTTPReady(http.DefaultClient, "http://"+addr+"/readyz", nil)
	if err := c.proc.WaitReady(ctx, controllerReadyTimeout, ready); err != nil {
		return nil, errors.Join(c.failure(err), c.stop())
	}
	return c, nil
}

// spawnController starts the process, its output in
// cfg.Dir/serin-controller.log. It runs in its own process group, so that a
// Ctrl-C in the terminal reaches the demo only, which then stops it in order,
// and is killed if the demo dies.
func spawnController(cfg controllerConfig, addr string) (*controller, error) {
	p, err := stack.StartProcess(cfg.Dir, "serin-controller", cfg.Bin, "controller",
		"--kubeconfig", cfg.Kubeconfig,
		"--http-addr", addr,
		"--prometheus-url", cfg.PrometheusURL,
		"--jaeger-url", cfg.JaegerURL,
		// The stack's Prometheus scrapes every second; the analysis windows
		// are sized from this.
		"--scrape-interval", "1s",
		"--auth", "static", "--api-token-file", cfg.TokenFile,
		"--istiod-url", cfg.IstiodURL,
	)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) { // cfg.Dir exists, so the binary is missing
			err = fmt.Errorf("%w (run `make build` first, or pass -serin PATH)", err)
		}
		return nil, err
	}
	p.OnKill(func() {
		fmt.Fprintf(os.Stderr, "serin-demo: the controller (pid %d) ignored SIGTERM for %v; sending SIGKILL\n", p.PID(), controllerStopGrace)
	})
	return &controller{proc: p, addr: addr}, nil
}

// failure builds an error naming the controller, its exit status if it has
// exited, and the tail of its log, with a hint for the known causes.
func (c *controller) failure(cause error) error {
	tail := c.proc.LogTail(20)
	status := ""
	if c.proc.Exited() {
		status = fmt.Sprintf(" (exited: %v)", c.proc.Err())
	}
	hint := ""
	if strings.Contains(tail, "flag provided but not defined") {
		hint = "\nhint: this serin binary is older than the demo's flags; rebuild it with `make build`"
	}
	err := fmt.Errorf("serin controller (pid %d, --http-addr %s)%s: %w%s\n--- tail of %s ---\n%s",
		c.proc.PID(), c.addr, status, cause, hint, c.proc.LogPath(), tail)
	if c.proc.Exited() && strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errPortClash, err)
	}
	return err
}

// stop stops the controller: SIGTERM, up to controllerStopGrace, then
// SIGKILL. Stopping an exited controller is a no-op.
func (c *controller) stop() error { return c.proc.Stop(controllerStopGrace) }

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port for the controller: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
