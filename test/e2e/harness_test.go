// Package e2e runs the serin binary against the real local stack: a real
// kube-apiserver with the real Istio CRDs and serin's CRD.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	istioapi "istio.io/api/networking/v1"
	securityapi "istio.io/api/security/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istio "istio.io/client-go/pkg/clientset/versioned"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
	"github.com/serin-dev/serin/test/stack"
)

var (
	st       *stack.Stack
	serinBin string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "serin-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	serinBin = filepath.Join(dir, "serin")
	build := exec.Command("go", "build", "-o", serinBin, "./cmd/serin")
	build.Dir = stack.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	fmt.Fprintln(os.Stderr, "[e2e] building serin")
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "[e2e] build serin: %v\n", err)
		return 1
	}
	// Istio: istioctl is the referee of every scenario (referee_test.go).
	// Istiod: Istio's real control plane, so that what serin writes is seen
	// as the proxies would get it (st.IstiodXDSAddr, st.IstiodDebugURL).
	return stack.Main(m, stack.Options{Prometheus: true, Jaeger: true, Istio: true, Istiod: true}, &st)
}

// env is one test's world: its own namespace, clients and controller.
type env struct {
	t     testing.TB // a test's or a benchmark's
	ns    string
	c     client.Client
	istio istio.Interface
	ctx   context.Context
	// analysisArgs are the controller's analysis flags; nil runs it with
	// --no-analysis.
	analysisArgs []string
	// extraArgs are appended to the controller's flags (notifications,
	// the API's authentication).
	extraArgs []string
	// ref is Istio's analyzers judging the namespace (referee_test.go).
	ref *referee
}

func newEnv(t testing.TB) *env {
	t.Helper()
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, v1alpha1.AddToScheme(scheme))
	c, err := client.New(st.RESTConfig(), client.Options{Scheme: scheme})
	must(t, err)
	ic, err := istio.NewForConfig(st.RESTConfig())
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ns: fmt.Sprintf("e2e-%d", rand.IntN(1_000_000)), c: c, istio: ic, ctx: ctx}
	e.ref = newReferee(e)
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}))
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// controllerProc is a running `serin controller`.
type controllerProc struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
}

// startController runs the real binary and waits until it is ready. The
// first start takes the referee's baseline: the mesh as the test set it up,
// before serin acts on it.
func (e *env) startController() *controllerProc {
	e.t.Helper()
	e.ref.start()
	addr := freeAddr(e.t)
	logf := filepath.Join(e.t.TempDir(), fmt.Sprintf("controller-%d.log", time.Now().UnixNano()))
	out, err := os.Create(logf)
	must(e.t, err)
	args := []string{"controller", "--kubeconfig", controllerKubeconfig(e.t), "--http-addr", addr, "--namespace", e.ns}
	if e.analysisArgs == nil {
		args = append(args, "--no-analysis") // the Core tests judge the engine, not the analysis
	}
	args = append(args, e.analysisArgs...)
	cmd := exec.Command(serinBin, append(args, e.extraArgs...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	must(e.t, cmd.Start())
	p := &controllerProc{cmd: cmd, addr: addr, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); out.Close(); close(p.done) }()
	e.t.Cleanup(func() {
		p.stop()
		if e.t.Failed() {
			b, _ := os.ReadFile(logf)
			e.t.Logf("controller log %s:\n%s", logf, tail(string(b), 60))
		}
	})
	e.eventually(30*time.Second, "controller ready on "+addr, func() (bool, string) {
		select {
		case <-p.done:
			e.t.Fatalf("controller exited before it was ready")
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return p
}

// kill stops the controller with SIGKILL, as a crash would.
func (p *controllerProc) kill() {
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits, then kills.
func (p *controllerProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

var (
	saOnce       sync.Once
	saKubeconfig string
	saErr        error
)

// controllerKubeconfig returns a kubeconfig for the serin-controller
// ServiceAccount with exactly the RBAC of deploy/rbac.yaml, so that every
// end-to-end test also proves those permissions are enough.
func controllerKubeconfig(t testing.TB) string {
	saOnce.Do(func() { saKubeconfig, saErr = makeSAKubeconfig() })
	must(t, saErr)
	return saKubeconfig
}

func makeSAKubeconfig() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		return "", err
	}
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serin-system"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if err := st.ApplyYAML(ctx, filepath.Join(stack.RepoRoot(), "deploy", "rbac.yaml")); err != nil {
		return "", fmt.Errorf("apply deploy/rbac.yaml: %w", err)
	}
	tr, err := kc.CoreV1().ServiceAccounts("serin-system").CreateToken(ctx, "serin-controller",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serin-controller: %w", err)
	}
	cfg, err := clientcmd.LoadFromFile(st.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, a := range cfg.AuthInfos {
		a.Token = tr.Status.Token
	}
	path := filepath.Join(st.Dir, "serin-controller.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond until it holds or the timeout passes.
func (e *env) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("timed out after %v waiting for %s (last: %s)", timeout, what, last)
}

const host = "checkout.%s.svc.cluster.local"

func (e *env) host() string { return fmt.Sprintf(host, e.ns) }

// mesh creates the DestinationRule with subsets, a STRICT PeerAuthentication
// and the VirtualService vs (nil: a plain one at 100/0), and what a cluster
// would hold besides: the demo application's Services, Pods and
// EndpointSlices (meshsim.Workloads: checkout v1 and v2 among them) in a
// namespace labelled for injection, so that Istio's analyzers find the
// hosts and subsets real.
func (e *env) mesh(vs *networkingv1.VirtualService, subsets ...string) *networkingv1.VirtualService {
	e.t.Helper()
	if len(subsets) == 0 {
		subsets = []string{"v1", "v2"}
	}
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: e.ns}}
	dr.Spec.Host = e.host()
	for _, s := range subsets {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &istioapi.Subset{Name: s, Labels: map[string]string{"version": s}})
	}
	_, err := e.istio.NetworkingV1().DestinationRules(e.ns).Create(e.ctx, dr, metav1.CreateOptions{})
	must(e.t, err)
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: e.ns}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
	_, err = e.istio.SecurityV1().PeerAuthentications(e.ns).Create(e.ctx, pa, metav1.CreateOptions{})
	must(e.t, err)
	if vs == nil {
		vs = e.plainVS()
	}
	vs.Namespace = e.ns
	out, err := e.istio.NetworkingV1().VirtualServices(e.ns).Create(e.ctx, vs, metav1.CreateOptions{})
	must(e.t, err)
	must(e.t, st.CreateWorkloads(e.ctx, e.ns, meshsim.Workloads()))
	return out
}

func (e *env) plainVS() *networkingv1.VirtualService {
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "checkout"}}
	vs.Spec.Hosts = []string{e.host()}
	vs.Spec.Http = []*istioapi.HTTPRoute{{Name: "primary", Route: e.dests(100, 0)}}
	return vs
}

func (e *env) dests(stable, canary int32) []*istioapi.HTTPRouteDestination {
	return []*istioapi.HTTPRouteDestination{
		{Destination: &istioapi.Destination{Host: e.host(), Subset: "v1"}, Weight: stable},
		{Destination: &istioapi.Destination{Host: e.host(), Subset: "v2"}, Weight: canary},
	}
}

// rollout creates a Rollout with fast steps. The first one takes the
// referee's baseline, if the controller has not already.
func (e *env) rollout(name string, mutate func(*v1alpha1.Rollout)) *v1alpha1.Rollout {
	e.t.Helper()
	e.ref.start()
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: v1alpha1.RolloutSpec{
			VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2",
			StepInterval: &metav1.Duration{Duration: time.Second},
			Analysis:     &v1alpha1.AnalysisSpec{Interval: &metav1.Duration{Duration: time.Second}},
		},
	}
	if mutate != nil {
		mutate(ro)
	}
	must(e.t, e.c.Create(e.ctx, ro))
	return ro
}

func (e *env) get(name string) *v1alpha1.Rollout {
	e.t.Helper()
	ro := &v1alpha1.Rollout{}
	must(e.t, e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: name}, ro))
	return ro
}

func (e *env) waitPhase(name string, p v1alpha1.Phase, timeout time.Duration) *v1alpha1.Rollout {
	e.t.Helper()
	var ro *v1alpha1.Rollout
	e.eventually(timeout, fmt.Sprintf("rollout %s in phase %s", name, p), func() (bool, string) {
		ro = e.get(name)
		return ro.Status.Phase == p, fmt.Sprintf("phase %s weight %d message %q", ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.Message)
	})
	return ro
}

// waitRouteRestored waits until a finished rollout's return to 100/0 is
// on the route: the status records the decision a moment before the
// weight is written, and the next rollout's preflight needs 100/0.
func (e *env) waitRouteRestored(name string) {
	e.t.Helper()
	e.eventually(10*time.Second, "rollout "+name+" to restore 100/0", func() (bool, string) {
		ro := e.get(name)
		return ro.Status.AppliedWeight == 0, fmt.Sprintf("applied weight %d", ro.Status.AppliedWeight)
	})
}

func (e *env) vs() *networkingv1.VirtualService {
	e.t.Helper()
	vs, err := e.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
	must(e.t, err)
	return vs
}

// weights returns the (stable, canary) weights of the named route.
func weights(vs *networkingv1.VirtualService, route string) (int32, int32) {
	for _, r := range vs.Spec.Http {
		if r.Name != route {
			continue
		}
		var s, c int32
		for _, d := range r.Route {
			switch d.Destination.Subset {
			case "v1", "stable": // subset mode, and a delivered workload's tracks
				s = d.Weight
			case "v2", "canary":
				c = d.Weight
			}
		}
		return s, c
	}
	return -1, -1
}

// weightLog records every distinct canary weight of the route, as the API
// server's watch delivers the VirtualService's versions, and when each
// arrived (for the benchmarks).
type weightLog struct {
	mu  sync.Mutex
	ws  []int32
	ats []time.Time
}

func (e *env) watchWeights(route string) *weightLog {
	e.t.Helper()
	l := &weightLog{}
	vsc := e.istio.NetworkingV1().VirtualServices(e.ns)
	ctx, cancel := context.WithCancel(e.ctx)
	e.t.Cleanup(cancel)
	record := func(vs *networkingv1.VirtualService) {
		s, c := weights(vs, route)
		if s+c != 100 {
			e.t.Errorf("weights %d/%d on route %s do not add up to 100", s, c, route)
		}
		l.mu.Lock()
		if len(l.ws) == 0 || l.ws[len(l.ws)-1] != c {
			l.ws = append(l.ws, c)
			l.ats = append(l.ats, time.Now())
		}
		l.mu.Unlock()
	}
	// list, then watch from there; start over when the watch ends, so that
	// no version is missed.
	once := func() string {
		list, err := vsc.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=checkout"})
		if err != nil {
			return err.Error()
		}
		for i := range list.Items {
			record(list.Items[i])
		}
		w, err := vsc.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=checkout", ResourceVersion: list.ResourceVersion})
		if err != nil {
			return err.Error()
		}
		defer w.Stop()
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				record(ev.Object.(*networkingv1.VirtualService))
			case watch.Error:
				return fmt.Sprintf("watch error: %v", ev.Object)
			}
		}
		return "watch closed"
	}
	go func() {
		for ctx.Err() == nil {
			if why := once(); ctx.Err() == nil {
				e.t.Logf("re-watching VirtualService: %s", why)
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return l
}

func (l *weightLog) get() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int32(nil), l.ws...)
}

// since returns when the canary weight first became w at or after t0.
func (l *weightLog) since(w int32, t0 time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.ws {
		if x == w && !l.ats[i].Before(t0) {
			return l.ats[i], true
		}
	}
	return time.Time{}, false
}

func (l *weightLog) has(w int32) bool {
	for _, x := range l.get() {
		if x == w {
			return true
		}
	}
	return false
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	var out bytes.Buffer
	must(t, json.Indent(&out, b, "", " "))
	return out.String()
}
