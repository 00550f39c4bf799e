package istioadapter

import (
	"testing"
	"time"

	apinet "istio.io/api/networking/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// cachedEnv is newEnv with a router that reads through a controller-runtime
// informer cache of the real API server, as cmd/serin wires it. The
// cache's own list and watch go around tr, so that tr counts the router's
// requests only.
func cachedEnv(t *testing.T, tr *tripper) *env {
	t.Helper()
	var cfg *rest.Config
	if tr != nil {
		cfg = watched(tr)
	}
	e := newEnv(t, cfg)
	scheme := runtime.NewScheme()
	if err := netv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := secv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(st.RESTConfig(), cache.Options{Scheme: scheme, DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		t.Fatalf("cache: %v", err)
	}
	r, err := NewRouter(Options{Istio: e.istio, Kube: e.kube, MeshRootNamespace: e.rootNS, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	// As the controller does: DestinationRules are read by host.
	if err := r.IndexFields(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(e.ctx) }()
	if !c.WaitForCacheSync(e.ctx) {
		t.Fatal("cache did not sync")
	}
	e.router = r
	return e
}

// TestCachedPreflightSeesObjectsCreatedJustBefore: a VirtualService,
// DestinationRule and PeerAuthentication created a moment before the
// preflight pass it, with no warning, though the cache may not hold them
// yet; a preflight that truly fails still fails.
func TestCachedPreflightSeesObjectsCreatedJustBefore(t *testing.T) {
	e := cachedEnv(t, nil)
	e.apply("", richVS)
	rep, err := e.router.Preflight(e.ctx, subsetTarget(e, ""))
	if err != nil || rep.OK() || rep.Failures[0].Check != "DestinationRule" {
		t.Fatalf("Preflight without a DestinationRule = %+v, %v; want a DestinationRule failure", rep, err)
	}
	e.apply("", drBoth+"\n---\n"+paStrict)
	rep, err = e.router.Preflight(e.ctx, subsetTarget(e, ""))
	if err != nil || !rep.OK() || len(rep.Warnings) != 0 {
		t.Fatalf("Preflight just after creating the DestinationRule and a STRICT PeerAuthentication = %+v, %v; want OK without warnings", rep, err)
	}
}

// TestCachedRouterReadsItsOwnWrites: right after each write, CanaryWeight
// returns the weight written, never the cache's older one, which the
// engine would take for a hand edit.
func TestCachedRouterReadsItsOwnWrites(t *testing.T) {
	e := cachedEnv(t, nil)
	e.apply("", richVS+"\n---\n"+drBoth)
	tgt := subsetTarget(e, "primary")
	for i := range 40 {
		w := int32((i*37 + 10) % 101)
		if err := e.router.SetCanaryWeight(e.ctx, tgt, w); err != nil {
			t.Fatalf("SetCanaryWeight(%d): %v", w, err)
		}
		if got, err := e.router.CanaryWeight(e.ctx, tgt); err != nil || got != w {
			t.Fatalf("CanaryWeight right after writing %d = %d, %v", w, got, err)
		}
	}
}

// TestCachedRouterSeesHandEdits: an edit by someone else reaches the
// cached reads (the engine then pauses for it), and a write guarded by the
// weights serin set never overwrites it, even while the cache is behind.
func TestCachedRouterSeesHandEdits(t *testing.T) {
	e := cachedEnv(t, nil)
	e.apply("", richVS+"\n---\n"+drBoth)
	tgt := subsetTarget(e, "primary")
	if err := e.router.SetCanaryWeight(e.ctx, tgt, 10); err != nil {
		t.Fatal(err)
	}
	vs, err := e.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	route := vs.Spec.Http[1].Route
	route[0].Weight, route[1].Weight = 70, 30
	vs.Spec.Http[1].Route = []*apinet.HTTPRouteDestination{route[0], route[1]}
	if _, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The guarded write goes to the API server, whatever the cache holds.
	if err := e.router.SetCanaryWeight(e.ctx, tgt, 25, 10); err == nil {
		t.Fatal("a write guarded by weight 10 went over a hand edit to 30")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.router.CanaryWeight(e.ctx, tgt)
		if err == nil && got == 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CanaryWeight = %d, %v ten seconds after a hand edit to 30", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCachedTicksAskTheAPIServerNothing: once the cache holds the objects,
// the reads of a tick (CanaryWeight) and of the mesh re-check (Preflight)
// send no request to the API server, however many.
func TestCachedTicksAskTheAPIServerNothing(t *testing.T) {
	tr := &tripper{}
	e := cachedEnv(t, tr)
	e.apply("", richVS+"\n---\n"+drBoth+"\n---\n"+paStrict)
	tgt := subsetTarget(e, "primary")
	if err := e.router.SetCanaryWeight(e.ctx, tgt, 10); err != nil {
		t.Fatal(err)
	}
	// Wait until the cache has caught up with the write.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := tr.gets.Load()
		_, _ = e.router.CanaryWeight(e.ctx, tgt)
		if tr.gets.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never caught up with the write")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := tr.gets.Load()
	for i := range 100 {
		if w, err := e.router.CanaryWeight(e.ctx, tgt); err != nil || w != 10 {
			t.Fatalf("CanaryWeight #%d = %d, %v", i, w, err)
		}
		if i%5 == 0 {
			rep, err := e.router.Preflight(e.ctx, tgt)
			if err != nil || !rep.OK() {
				t.Fatalf("Preflight #%d = %+v, %v", i, rep, err)
			}
		}
	}
	if n := tr.gets.Load() - before; n != 0 {
		t.Errorf("100 ticks and 20 mesh re-checks sent %d GETs to the API server, want 0", n)
	}
}

// TestCachedPodCountsByLabelIndex: the subset check's pod counts come
// from the cache's label index, narrowed by the Service's selector, and
// count the pods that have every label: not a pod of another service
// with the subset's labels, not one of the service's other version.
// (The env holds a v1 and a v2 pod of each of services too.)
func TestCachedPodCountsByLabelIndex(t *testing.T) {
	tr := &tripper{}
	e := cachedEnv(t, tr)
	e.pod("cart-v1", map[string]string{"app": "cart", "version": "v1"})
	e.pod("cart-v2", map[string]string{"app": "cart", "version": "v2", "tier": "web"})
	e.pod("stray-v2", map[string]string{"app": "other", "version": "v2"})
	svc := map[string]string{"app": "cart"}
	count := func(set map[string]string, by map[string]string) int {
		t.Helper()
		n, err := e.router.countPods(e.ctx, e.ns, set, by, true)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	pods := 2*len(services) + 3 // the env's and these
	for count(map[string]string{}, nil) < pods {
		if time.Now().After(deadline) {
			t.Fatalf("the cache never held the %d pods", pods)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := tr.gets.Load()
	for _, c := range []struct {
		set, by map[string]string
		want    int
	}{
		{map[string]string{"app": "cart", "version": "v2"}, svc, 1},
		{map[string]string{"app": "cart", "version": "v1"}, svc, 1},
		{map[string]string{"app": "cart", "version": "v3"}, svc, 0},
		{map[string]string{"app": "cart"}, svc, 2},
		{map[string]string{"app": "cart", "version": "v2", "tier": "web"}, map[string]string{"app": "cart", "tier": "web"}, 1},
		{map[string]string{"app": "nothing"}, map[string]string{"app": "nothing"}, 0},
		{map[string]string{"version": "v2"}, nil, len(services) + 2}, // no Service selector: the namespace's pods are matched
	} {
		if got := count(c.set, c.by); got != c.want {
			t.Errorf("pods with %v (narrowed by %v) = %d, want %d", c.set, c.by, got, c.want)
		}
	}
	if n := tr.gets.Load() - before; n != 0 {
		t.Errorf("the counts sent %d GETs to the API server, want 0", n)
	}
}
