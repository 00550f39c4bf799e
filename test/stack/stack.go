// Package stack runs serin's real local stack for integration tests and the
// demo: etcd and kube-apiserver with the real Istio CRDs and serin's CRDs,
// and optionally Prometheus, Jaeger v2 and Istio's control plane (istiod,
// that is pilot-discovery). Every process listens on 127.0.0.1 only, keeps
// its data in a temporary directory and is stopped by its PID. Binaries come
// from test/tools/install.sh, which Start runs when one is missing.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Options selects the optional parts of the stack. etcd, kube-apiserver and
// the CRDs always run.
type Options struct {
	Prometheus bool // also start Prometheus (1s scrape interval, file_sd targets)
	Jaeger     bool // also start Jaeger v2 (in-memory, OTLP + query on 127.0.0.1)
	// Istio makes sure istioctl (for Analyze) and pilot-discovery are
	// installed; it starts no process. It is opt-in because their first
	// build takes 5-17 minutes on 2 cores.
	Istio bool
	// Istiod also starts Istio's control plane, pilot-discovery, against the
	// API server once the CRDs are served (it implies Istio). Its addresses
	// are IstiodXDSAddr and IstiodDebugURL. Like a real istiod it writes to
	// the API server: its CA secret and leader locks in istio-system (which
	// Start creates), and the ConfigMaps istio-ca-root-cert and istio-ca-crl
	// in every namespace; it writes nothing to VirtualServices.
	Istiod bool
	Log    io.Writer // progress lines ("[stack] starting etcd on 127.0.0.1:NNNN"); nil means os.Stderr
}

// Stack is a running local stack. Its exported fields are set by Start and
// must not be changed.
type Stack struct {
	Dir              string // temp dir holding all data and process logs; removed by Stop
	APIServerURL     string // https://127.0.0.1:PORT
	Kubeconfig       string // path of an admin kubeconfig file (token auth, the API server's CA)
	PrometheusURL    string // http://127.0.0.1:PORT, "" unless Options.Prometheus
	JaegerQueryURL   string // http://127.0.0.1:PORT (HTTP query API: /api/traces, /api/v3/traces), "" unless Options.Jaeger
	OTLPHTTPEndpoint string // 127.0.0.1:PORT of Jaeger's OTLP/HTTP receiver (no scheme)
	OTLPGRPCEndpoint string // 127.0.0.1:PORT of Jaeger's OTLP/GRPC receiver
	// IstiodXDSAddr is 127.0.0.1:PORT of istiod's plaintext ADS port (xDS
	// over gRPC, no mTLS), "" unless Options.Istiod.
	IstiodXDSAddr string
	// IstiodDebugURL is http://127.0.0.1:PORT of istiod's HTTP server, which
	// serves /ready, /debug/syncz, /debug/configz and /debug/config_dump;
	// "" unless Options.Istiod.
	IstiodDebugURL string

	log          io.Writer
	tokens       map[string]string // user name -> bearer token
	caData       []byte            // PEM of the API server's serving certificate chain
	sdDir        string            // Prometheus file_sd directory
	jaegerHealth string            // URL of Jaeger's health check
	podIPs       atomic.Uint32     // stand-in Pod IPs handed out (workloads.go)
	istiodPorts  istiodPorts       // picked at the first start, kept for StartIstiod

	mu                                  sync.Mutex
	procs                               []*Process // every process started, in start order
	etcd, apiserver, prometheus, jaeger *Process
	istiod                              *Process // the latest one started
}

// Start starts the stack: etcd, then kube-apiserver and the CRDs, then
// istiod, with Prometheus and Jaeger (when asked for) started concurrently.
// It returns once everything is ready. On failure it stops what it started and removes Dir;
// the error names the process and includes the tail of its log.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	log := opts.Log
	if log == nil {
		log = os.Stderr
	}
	components := []string{"etcd", "kube"}
	if opts.Prometheus {
		components = append(components, "prometheus")
	}
	if opts.Jaeger {
		components = append(components, "jaeger")
	}
	if opts.Istio || opts.Istiod {
		components = append(components, "istio")
	}
	if err := Ensure(ctx, log, components...); err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	dir, err := os.MkdirTemp("", "serin-stack-")
	if err != nil {
		return nil, fmt.Errorf("start stack: create temp dir: %w", err)
	}
	s := &Stack{Dir: dir, log: log}
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() {
		// istiod watches the API server and the Istio CRDs, so it starts
		// once they are ready, alongside Prometheus and Jaeger.
		if errs[0] = s.startKube(ctx); errs[0] == nil && opts.Istiod {
			errs[0] = s.startIstiod(ctx)
		}
	})
	if opts.Prometheus {
		wg.Go(func() { errs[1] = s.startPrometheus(ctx) })
	}
	if opts.Jaeger {
		wg.Go(func() { errs[2] = s.startJaeger(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("start stack: %w", err)
	}
	s.logf("stack ready in %v (dir %s)", time.Since(begin).Round(10*time.Millisecond), dir)
	return s, nil
}

// logf writes one progress line.
func (s *Stack) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "[stack] "+format+"\n", args...)
}

// track records a started process so that Stop and PIDs see it.
func (s *Stack) track(p *Process, slot **Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.OnKill(func() { s.logf("%s (pid %d) ignored SIGTERM for %v; sending SIGKILL", p.Name(), p.PID(), stopGrace) })
	s.procs = append(s.procs, p)
	*slot = p
}

// Prometheus is the stack's Prometheus process, for tests that stop and
// continue it (SIGSTOP, SIGCONT) to play an unresponsive metrics server.
func (s *Stack) Prometheus() *Process { return s.prometheus }

// PIDs returns the PIDs of every process the stack started, including ones
// already stopped, so that tests can check that none outlives Stop.
func (s *Stack) PIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.procs))
	for _, p := range s.procs {
		pids = append(pids, p.PID())
	}
	return pids
}

// Stop stops every process by its PID (istiod, which watches the API server,
// then kube-apiserver, then etcd, with Prometheus and Jaeger alongside),
// SIGTERM first and SIGKILL after a few seconds, then removes Dir. It is safe to call twice.
func (s *Stack) Stop() error {
	s.mu.Lock()
	istiod, api, etcd, prom, jaeger := s.istiod, s.apiserver, s.etcd, s.prometheus, s.jaeger
	all := append([]*Process(nil), s.procs...)
	s.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	// etcd goes after the API server: with etcd gone first, the API server
	// hangs on SIGTERM. istiod goes before it, so that it does not spend its
	// shutdown retrying a vanished API server.
	wg.Go(func() { errs[0] = errors.Join(stopIfSet(istiod), stopIfSet(api), stopIfSet(etcd)) })
	wg.Go(func() { errs[1] = stopIfSet(prom) })
	wg.Go(func() { errs[2] = stopIfSet(jaeger) })
	wg.Wait()
	for _, p := range all { // anything started but not yet in a slot
		errs[3] = errors.Join(errs[3], p.Stop(stopGrace))
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", s.Dir, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop stack: %w", err)
	}
	return nil
}

// stopIfSet stops p unless it is nil.
func stopIfSet(p *Process) error {
	if p == nil {
		return nil
	}
	return p.Stop(stopGrace)
}

// Main is the body of a TestMain that needs the stack:
//
//	var st *stack.Stack
//	func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{Prometheus: true}, &st)) }
//
// It starts the stack, sets *s, runs the tests and stops the stack. When the
// stack cannot start it prints why and returns 1: a missing server is a
// failure, never a skip. SIGINT or SIGTERM stops the stack before exiting.
func Main(m *testing.M, opts Options, s **Stack) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running atomic.Pointer[Stack]
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case got := <-sig:
			cancel()
			if st := running.Load(); st != nil {
				_ = st.Stop()
			}
			fmt.Fprintf(os.Stderr, "[stack] %v: stack stopped\n", got)
			os.Exit(1)
		case <-ctx.Done():
		}
	}()

	st, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the local stack did not start, so these tests cannot run:\n%v\n", err)
		return 1
	}
	running.Store(st)
	*s = st
	code := m.Run()
	if err := st.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
