package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// IstiodNamespace is the namespace istiod runs in (POD_NAMESPACE). It keeps
// its CA secret, leader-election locks and mesh ConfigMap there.
const IstiodNamespace = "istio-system"

// istiodReadyTimeout bounds istiod's start: it is ready in 1.5-2 s here
// (0.4 s when started again), once its informers have synced with the API
// server; the margin is for a loaded 2-core CI machine.
const istiodReadyTimeout = 60 * time.Second

// istiodPorts are the loopback ports of one istiod. They are picked once, so
// that a restarted istiod (StartIstiod) is found where clients left it.
type istiodPorts struct {
	GRPC       int // plaintext ADS (--grpcAddr)
	HTTP       int // readiness and debug (--httpAddr)
	Monitoring int // its own /metrics (--monitoringAddr)
	CtrlZ      int // ControlZ introspection (--ctrlz_port)
}

// istiodEnv is the environment istiod runs with, besides the parent's.
var istiodEnv = []string{
	"POD_NAMESPACE=" + IstiodNamespace,
	// The debounce decides how soon a config change reaches the proxies:
	// istiod waits until no event came for PILOT_DEBOUNCE_AFTER, but never
	// longer than PILOT_DEBOUNCE_MAX. 100ms is Istio's default and is set
	// so that a change of default cannot slow the tests silently; the
	// maximum is cut from 10s to 1s so that a stream of writes (a rollout
	// stepping every tick) still reaches the proxies within a second.
	"PILOT_DEBOUNCE_AFTER=100ms",
	"PILOT_DEBOUNCE_MAX=1s",
	// Unready endpoints are sent, marked UNHEALTHY, instead of left out:
	// Envoy (and the simulator) still never routes to them, but a call
	// that finds only unready pods is then told apart from one to an
	// unknown cluster, and the simulator counts it by workload
	// (meshsim_unready_requests_total), which the workload tests assert.
	"PILOT_SEND_UNHEALTHY_ENDPOINTS=true",
}

// istiodArgs returns pilot-discovery's command line for ports and the
// kubeconfig, every listener on 127.0.0.1. The empty --secureGRPCAddr and
// --httpsAddr turn off the mTLS xDS port (15012) and the webhook HTTPS port
// (15017): no Envoy with a certificate would use the first, and istiod then
// serves its webhooks and CA on --httpAddr instead of opening another port.
// --ctrlz_port is pinned because ControlZ defaults to 9876, which two stacks
// would share. --shutdownDuration bounds istiod's graceful stop (10s by
// default) below stopGrace, so that SIGTERM, not SIGKILL, ends it.
func istiodArgs(kubeconfig string, p istiodPorts) []string {
	return []string{
		"discovery",
		"--kubeconfig", kubeconfig,
		"--grpcAddr", hostPort(p.GRPC),
		"--httpAddr", hostPort(p.HTTP),
		"--monitoringAddr", hostPort(p.Monitoring),
		"--secureGRPCAddr", "",
		"--httpsAddr", "",
		"--ctrlz_address", "127.0.0.1",
		"--ctrlz_port", strconv.Itoa(p.CtrlZ),
		"--domain", "cluster.local",
		"--shutdownDuration", "2s",
	}
}

// startIstiod creates istio-system, picks istiod's ports and starts it. The
// API server must be ready and the Istio CRDs served.
func (s *Stack) startIstiod(ctx context.Context) error {
	if err := s.ensureNamespace(ctx, IstiodNamespace); err != nil {
		return fmt.Errorf("istiod: %w", err)
	}
	return withPortRetry(func() error {
		ports, err := freePorts(4)
		if err != nil {
			return fmt.Errorf("istiod: %w", err)
		}
		ip := istiodPorts{GRPC: ports[0], HTTP: ports[1], Monitoring: ports[2], CtrlZ: ports[3]}
		if err := s.runIstiod(ctx, ip); err != nil {
			return err
		}
		// Set once: a restart (StartIstiod) reuses the ports, and tests may
		// read these fields meanwhile.
		s.IstiodXDSAddr, s.IstiodDebugURL = ip.xdsAddr(), ip.debugURL()
		return nil
	})
}

// xdsAddr is the address of the plaintext ADS port.
func (p istiodPorts) xdsAddr() string { return hostPort(p.GRPC) }

// debugURL is the URL of the HTTP server with /ready and /debug/*.
func (p istiodPorts) debugURL() string { return "http://" + hostPort(p.HTTP) }

// runIstiod starts pilot-discovery on ports and waits until it is ready. It
// sets the istiod fields of the stack first, so that a failed start still
// leaves the process in Stop's reach.
func (s *Stack) runIstiod(ctx context.Context, ports istiodPorts) error {
	dir := filepath.Join(s.Dir, "istiod")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("istiod: create %s: %w", dir, err)
	}
	s.logf("starting istiod (xDS on %s, debug on %s)", ports.xdsAddr(), ports.debugURL())
	// StartProcess passes on the parent's environment; env(1) adds istiod's
	// variables and then execs pilot-discovery in place, so the PID that the
	// stack tracks and signals is pilot-discovery's own. Its working
	// directory is its own too, as it writes ./var/run/secrets there.
	args := append(append([]string(nil), istiodEnv...), filepath.Join(BinDir(), "pilot-discovery"))
	args = append(args, istiodArgs(s.Kubeconfig, ports)...)
	begin := time.Now()
	p, err := StartProcess(dir, "istiod", systemBin("env"), args...)
	if err != nil {
		return fmt.Errorf("istiod: %w", err)
	}
	s.mu.Lock()
	s.istiodPorts = ports
	s.mu.Unlock()
	s.track(p, &s.istiod)
	if err := waitReady(ctx, p, istiodReadyTimeout, istiodReady(ports)); err != nil {
		return err
	}
	s.logf("istiod ready in %v (pid %d)", time.Since(begin).Round(10*time.Millisecond), p.PID())
	return nil
}

// istiodReady is istiod's readiness check: /ready answers 200 once its
// caches have synced with the API server, /debug/syncz answers a JSON list
// (of the connected proxies), and the xDS port accepts connections.
func istiodReady(ports istiodPorts) func(context.Context) error {
	xdsAddr, debugURL := ports.xdsAddr(), ports.debugURL()
	ready := HTTPReady(http.DefaultClient, debugURL+"/ready", nil)
	return func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		if err := syncz(ctx, debugURL); err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", xdsAddr)
		if err != nil {
			return fmt.Errorf("xDS port: %w", err)
		}
		return conn.Close()
	}
}

// syncz GETs /debug/syncz and checks that it is a JSON list.
func syncz(ctx context.Context, debugURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, debugURL+"/debug/syncz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET /debug/syncz: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/syncz: %s", resp.Status)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("GET /debug/syncz: not a JSON list: %w", err)
	}
	return nil
}

// ensureNamespace creates namespace ns unless it exists. No
// controller-manager runs here, but a namespace needs none to be usable.
func (s *Stack) ensureNamespace(ctx context.Context, ns string) error {
	kc, err := kubernetes.NewForConfig(s.RESTConfig())
	if err != nil {
		return fmt.Errorf("create namespace %s: client: %w", ns, err)
	}
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// Istiod returns the latest istiod process, or nil when the stack runs no
// istiod. After StopIstiod it is the stopped one (Exited reports true) until
// StartIstiod starts another.
func (s *Stack) Istiod() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.istiod
}

// StopIstiod stops istiod by its PID (SIGTERM, then SIGKILL after a few
// seconds), for tests of a control plane that goes away mid-rollout. Its
// addresses keep their values, so that clients see the refusal, and
// StartIstiod brings it back on them. Stopping a stopped istiod does
// nothing.
func (s *Stack) StopIstiod() error {
	s.mu.Lock()
	p := s.istiod
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("stop istiod: the stack runs no istiod")
	}
	if err := p.Stop(stopGrace); err != nil {
		return fmt.Errorf("stop istiod: %w", err)
	}
	return nil
}

// StartIstiod starts istiod again after StopIstiod, on the same addresses
// (IstiodXDSAddr, IstiodDebugURL), so that clients reconnect where they
// were, and waits until it is ready. It does nothing while istiod runs.
func (s *Stack) StartIstiod(ctx context.Context) error {
	s.mu.Lock()
	p, ports := s.istiod, s.istiodPorts
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("start istiod: the stack runs no istiod (Options.Istiod)")
	}
	if !p.Exited() {
		return nil
	}
	if err := s.runIstiod(ctx, ports); err != nil {
		return fmt.Errorf("start istiod again on %s: %w", ports.xdsAddr(), err)
	}
	return nil
}
