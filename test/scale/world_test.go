package scale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	istioapi "istio.io/api/networking/v1"
	securityapi "istio.io/api/security/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istio "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/istioexporter"
	"github.com/serin-dev/serin/test/stack"
)

// createWorkers bounds the concurrent creates of mesh objects and
// Rollouts: enough to keep the API server busy, few enough for 2 cores.
const createWorkers = 8

// world is one scale run: a namespace with N services' VirtualServices,
// DestinationRules and a STRICT PeerAuthentication, the exporter playing
// their sidecars, and the serin controller.
type world struct {
	t        testing.TB
	ctx      context.Context
	ns       string
	n        int
	interval time.Duration // every rollout's analysis interval
	c        client.WithWatch
	istio    istio.Interface
	kube     kubernetes.Interface
	exp      *istioexporter.Exporter
	ctrl     *stack.Process
	ctrlAddr string
	apiToken string // a viewer's bearer token for the REST API
}

// newWorld creates the namespace and its mesh objects and starts the
// exporter, scraped by the stack's Prometheus, at rps per service.
func newWorld(t testing.TB, ctx context.Context, n int, rps float64, interval time.Duration) *world {
	t.Helper()
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, v1alpha1.AddToScheme(scheme))
	cfg := st.RESTConfig()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	must(t, err)
	ic, err := istio.NewForConfig(cfg)
	must(t, err)
	kc, err := kubernetes.NewForConfig(cfg)
	must(t, err)
	w := &world{t: t, ctx: ctx, ns: fmt.Sprintf("scale-%d-%06d", n, mrand.IntN(1_000_000)), n: n, interval: interval,
		c: c, istio: ic, kube: kc}
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}, metav1.CreateOptions{})
	must(t, err)
	logf(t, "namespace %s: creating %d VirtualServices and DestinationRules and a STRICT PeerAuthentication", w.ns, n)
	must(t, w.mesh())
	exp, err := istioexporter.Start(ctx, istioexporter.Options{Namespace: w.ns, Services: n, RPS: rps, Seed: uint64(n), RESTConfig: cfg})
	must(t, err)
	w.exp = exp
	t.Cleanup(func() { _ = exp.Close() })
	job := "istioexporter-" + w.ns
	must(t, st.SetScrapeTargets(job, exp.Targets()))
	t.Cleanup(func() { _ = st.SetScrapeTargets(job, nil) })
	return w
}

// service is the name of the i-th service (0-based), also its
// VirtualService's, DestinationRule's and Rollout's.
func service(i int) string { return istioexporter.ServiceName(i + 1) }

// mesh creates every service's DestinationRule (subsets v1 and v2) and
// VirtualService (route "primary" at 100/0), and the namespace's STRICT
// PeerAuthentication.
func (w *world) mesh() error {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: w.ns}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
	if _, err := w.istio.SecurityV1().PeerAuthentications(w.ns).Create(w.ctx, pa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create PeerAuthentication %s/default: %w", w.ns, err)
	}
	// What a real cluster has behind the routes: each service's Service,
	// its v1 and v2 pods and their EndpointSlice (serin's preflight checks
	// them as Istio's analyzers do).
	var apps stack.Workloads
	for i := range w.n {
		apps = apps.Plus(stack.App(service(i), istioexporter.StableVersion, istioexporter.CanaryVersion))
	}
	if err := st.CreateWorkloads(w.ctx, w.ns, apps); err != nil {
		return err
	}
	return parallel(w.ctx, w.n, func(ctx context.Context, i int) error {
		name := service(i)
		host := istioexporter.Host(w.ns, name)
		dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns}}
		dr.Spec.Host = host
		for _, v := range []string{istioexporter.StableVersion, istioexporter.CanaryVersion} {
			dr.Spec.Subsets = append(dr.Spec.Subsets, &istioapi.Subset{Name: v, Labels: map[string]string{"version": v}})
		}
		if _, err := w.istio.NetworkingV1().DestinationRules(w.ns).Create(ctx, dr, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create DestinationRule %s/%s: %w", w.ns, name, err)
		}
		vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns}}
		vs.Spec.Hosts = []string{host}
		vs.Spec.Http = []*istioapi.HTTPRoute{{Name: "primary", Route: []*istioapi.HTTPRouteDestination{
			{Destination: &istioapi.Destination{Host: host, Subset: istioexporter.StableVersion}, Weight: 100},
			{Destination: &istioapi.Destination{Host: host, Subset: istioexporter.CanaryVersion}, Weight: 0},
		}}}
		if _, err := w.istio.NetworkingV1().VirtualServices(w.ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create VirtualService %s/%s: %w", w.ns, name, err)
		}
		return nil
	})
}

// parallel runs f for 0 … n-1 on createWorkers goroutines and returns the
// first error.
func parallel(ctx context.Context, n int, f func(context.Context, int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(createWorkers)
	for i := range n {
		g.Go(func() error { return f(ctx, i) })
	}
	return g.Wait()
}

// startController runs the serin binary as the e2e harness does, with the
// RBAC of deploy/rbac.yaml, analysis on the stack's Prometheus and Jaeger,
// and the REST API on with a static viewer token so that the list can be
// timed. It is stopped by its PID when the test ends.
func (w *world) startController() {
	w.t.Helper()
	dir := w.t.TempDir()
	tok := make([]byte, 24)
	_, err := rand.Read(tok)
	must(w.t, err)
	w.apiToken = hex.EncodeToString(tok)
	tokens := filepath.Join(dir, "api-tokens")
	must(w.t, os.WriteFile(tokens, []byte(w.apiToken+",scale-bench,viewer\n"), 0o600))
	w.ctrlAddr = freeAddr(w.t)
	args := []string{"controller",
		"--kubeconfig", controllerKubeconfig(w.t),
		"--http-addr", w.ctrlAddr,
		"--namespace", w.ns,
		"--prometheus-url", st.PrometheusURL,
		"--jaeger-url", st.JaegerQueryURL,
		"--scrape-interval", "1s",
		"--auth=static", "--api-token-file", tokens,
	}
	if a := os.Getenv("SCALE_PPROF"); a != "" {
		args = append(args, "--pprof-addr", a) // to profile the controller during a run
	}
	// SCALE_CONTROLLER_ARGS adds flags, to measure another setting
	// (--max-concurrent-reconciles=64, say); the table's header says so.
	args = append(args, strings.Fields(os.Getenv("SCALE_CONTROLLER_ARGS"))...)
	p, err := stack.StartProcess(dir, "serin-controller", serinBin, args...)
	must(w.t, err)
	w.ctrl = p
	w.t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			w.t.Errorf("stop the controller: %v", err)
		}
		if w.t.Failed() {
			w.t.Logf("controller log %s:\n%s", p.LogPath(), p.LogTail(40))
		}
	})
	err = p.WaitReady(w.ctx, 60*time.Second, stack.HTTPReady(http.DefaultClient, "http://"+w.ctrlAddr+"/readyz", nil))
	if err != nil {
		w.t.Fatalf("controller (pid %d) not ready: %v\n%s", p.PID(), err, p.LogTail(40))
	}
	logf(w.t, "controller pid %d ready on %s", p.PID(), w.ctrlAddr)
}

// rolloutFor is the Rollout of the i-th service: subset mode, a step so
// long that it stays at its first step, and the analysis interval of the
// run; every other field has its default.
func (w *world) rolloutFor(name, svc string) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns},
		Spec: v1alpha1.RolloutSpec{
			VirtualService: svc, StableSubset: istioexporter.StableVersion, CanarySubset: istioexporter.CanaryVersion,
			StepInterval: &metav1.Duration{Duration: 24 * time.Hour},
			Analysis:     &v1alpha1.AnalysisSpec{Interval: &metav1.Duration{Duration: w.interval}},
		},
	}
}

// createRollouts creates one Rollout per service, named as the service.
func (w *world) createRollouts() {
	w.t.Helper()
	must(w.t, parallel(w.ctx, w.n, func(ctx context.Context, i int) error {
		ro := w.rolloutFor(service(i), service(i))
		if err := w.c.Create(ctx, ro); err != nil {
			return fmt.Errorf("create Rollout %s/%s: %w", w.ns, ro.Name, err)
		}
		return nil
	}))
}

// waitPrometheus waits until Prometheus holds the inbound series of every
// service, so that no rollout starts on a mesh Prometheus has not seen.
func (w *world) waitPrometheus() {
	w.t.Helper()
	q := fmt.Sprintf(`count(count by (destination_service_name) (istio_requests_total{reporter="destination",destination_workload_namespace=%q}))`, w.ns)
	eventually(w.t, 2*time.Minute, "Prometheus to see every service", func() (bool, string) {
		v, err := promScalar(w.ctx, q)
		if err != nil {
			return false, err.Error()
		}
		return int(v) == w.n, fmt.Sprintf("%v of %d services", v, w.n)
	})
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// logf prints a progress line at once, also without -v: a run at a
// thousand rollouts takes minutes.
func logf(t testing.TB, format string, args ...any) {
	t.Helper()
	fmt.Fprintf(os.Stderr, "[scale] "+format+"\n", args...)
}

// eventually polls cond every 100 ms until it holds, or fails after
// timeout with cond's last word.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s (last: %s)", timeout, what, last)
}
