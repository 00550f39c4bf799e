package meshsim

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	apiv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/test/stack"
)

// Integration tests of the simulator as an xDS client of the real istiod of
// the local stack: the routes come from istiod, only the forwarding is
// simulated.

const checkoutFQDN = "checkout.%s.svc.cluster.local"

// startXDSMesh writes the demo's Services, Pods and EndpointSlices into ns
// and starts a Sim there whose sidecars subscribe to the stack's istiod.
func startXDSMesh(t *testing.T, ns string) *Sim {
	t.Helper()
	createNamespace(t, ns)
	if err := st.CreateWorkloads(t.Context(), ns, Workloads()); err != nil {
		t.Fatalf("CreateWorkloads: %v", err)
	}
	return startMeshWith(t, Options{Namespace: ns, XDSAddr: st.IstiodXDSAddr})
}

// proxyOf returns the status of workload's sidecar.
func proxyOf(t *testing.T, s *Sim, workload string) ProxyStatus {
	t.Helper()
	for _, p := range s.Proxies() {
		if p.Workload == workload {
			return p
		}
	}
	t.Fatalf("no sidecar for %s among %+v", workload, s.Proxies())
	return ProxyStatus{}
}

// waitForWeights waits until workload's sidecar has want (cluster host
// short name/subset → weight) for host and returns when that route version
// arrived. Istio leaves clusters of weight 0 out, so want's are ignored.
func waitForWeights(t *testing.T, s *Sim, workload, host string, want map[string]int32) time.Time {
	t.Helper()
	want = maps.Clone(want)
	maps.DeleteFunc(want, func(_ string, w int32) bool { return w == 0 })
	var arrived time.Time
	eventually(t, 15*time.Second, fmt.Sprintf("sidecar of %s routes %s by %v", workload, host, want), func() error {
		p := proxyOf(t, s, workload)
		got := shortWeights(p.WeightedClusters[host])
		if !equalWeights(got, want) {
			return fmt.Errorf("has %v (route version %q)", got, p.RouteVersion)
		}
		arrived = p.RouteUpdates[len(p.RouteUpdates)-1].Received
		return nil
	})
	return arrived
}

// shortWeights maps weighted clusters to "service/subset" → weight.
func shortWeights(cs []WeightedCluster) map[string]int32 {
	out := map[string]int32{}
	for _, c := range cs {
		name, _, _ := strings.Cut(c.Host, ".")
		out[name+"/"+c.Subset] = c.Weight
	}
	return out
}

// fireSplit sends n requests and checks that v2 served within tol of
// wantV2 of them.
func fireSplit(t *testing.T, s *Sim, n, wantV2, tol int) {
	t.Helper()
	counts, err := s.Fire(t.Context(), n)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if got := counts["v2"]; got < wantV2-tol || got > wantV2+tol || counts["v1"]+got != n {
		t.Fatalf("%d requests went %v, want v2 %d±%d and the rest to v1", n, counts, wantV2, tol)
	}
}

func TestStackXDSSubsetModeFollowsIstiod(t *testing.T) {
	ns := "xds-subset"
	createNamespace(t, ns)
	createCanaryRouting(t, ns, 75, 25)
	s := startXDSMesh(t, ns)
	host := fmt.Sprintf(checkoutFQDN, ns)
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": 75, "checkout/v2": 25})
	if p := proxyOf(t, s, "frontend-v1"); !strings.HasPrefix(p.ID, "sidecar~10.128.") || !strings.HasSuffix(p.ID, "~"+ns+".svc.cluster.local") {
		t.Errorf("node ID %q is not a sidecar of a stand-in Pod", p.ID)
	}
	fireSplit(t, s, 2000, 500, 25)
	for _, w := range [][2]int32{{50, 50}, {10, 90}, {0, 100}} {
		wrote := time.Now()
		updateWeights(t, ns, w[0], w[1])
		arrived := waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": w[0], "checkout/v2": w[1]})
		t.Logf("VirtualService %d/%d written → route pushed to frontend-v1's sidecar in %v", w[0], w[1], arrived.Sub(wrote).Round(time.Millisecond))
		fireSplit(t, s, 1000, int(w[1])*10, 15)
	}
}

func TestStackXDSHostModeFollowsIstiod(t *testing.T) {
	ns := "xds-host"
	createNamespace(t, ns)
	createHostRouting(t, ns, 80, 20)
	s := startXDSMesh(t, ns)
	host := fmt.Sprintf(checkoutFQDN, ns)
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout-primary/": 80, "checkout-canary/": 20})
	fireSplit(t, s, 2000, 400, 25)
	wrote := time.Now()
	updateWeights(t, ns, 30, 70)
	arrived := waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout-primary/": 30, "checkout-canary/": 70})
	t.Logf("VirtualService 30/70 written → route pushed in %v", arrived.Sub(wrote).Round(time.Millisecond))
	fireSplit(t, s, 2000, 1400, 25)
}

// createHostRouting creates checkout's VirtualService in ns routing between
// the hosts checkout-primary (v1) and checkout-canary (v2).
func createHostRouting(t *testing.T, ns string, primary, canary int32) {
	t.Helper()
	v := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns}}
	v.Spec.Hosts = []string{"checkout"}
	v.Spec.Http = []*apiv1alpha3.HTTPRoute{route(nil, to("checkout-primary", "", primary), to("checkout-canary", "", canary))}
	if _, err := istio(t).NetworkingV1().VirtualServices(ns).Create(t.Context(), v, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService %s/checkout: %v", ns, err)
	}
}

func TestStackXDSFrozenProxyKeepsItsRoutes(t *testing.T) {
	ns := "xds-frozen"
	createNamespace(t, ns)
	createCanaryRouting(t, ns, 75, 25)
	s := startXDSMesh(t, ns)
	host := fmt.Sprintf(checkoutFQDN, ns)
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": 75, "checkout/v2": 25})
	if err := s.SetProxyFrozen("frontend-v1", true); err != nil {
		t.Fatalf("SetProxyFrozen: %v", err)
	}
	before := proxyOf(t, s, "frontend-v1").RouteVersion
	updateWeights(t, ns, 0, 100)
	pod := "frontend-v1." + ns
	eventually(t, 15*time.Second, "istiod sees the frozen sidecar's routes unACKed", func() error {
		sy, err := syncz(t.Context(), ns, pod)
		if err != nil {
			return err
		}
		if sy.RouteSent == "" || sy.RouteSent == sy.RouteAcked {
			return fmt.Errorf("route_sent %q, route_acked %q", sy.RouteSent, sy.RouteAcked)
		}
		return nil
	})
	p := proxyOf(t, s, "frontend-v1")
	if p.RouteVersion != before || p.PendingRouteVersion == "" || !p.Frozen {
		t.Fatalf("frozen sidecar: version %q (was %q), pending %q, frozen %v", p.RouteVersion, before, p.PendingRouteVersion, p.Frozen)
	}
	fireSplit(t, s, 400, 100, 10) // the old 75/25 still
	if err := s.SetProxyFrozen("frontend-v1", false); err != nil {
		t.Fatalf("SetProxyFrozen: %v", err)
	}
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": 0, "checkout/v2": 100})
	eventually(t, 10*time.Second, "istiod sees the thawed sidecar's ACK", func() error {
		sy, err := syncz(t.Context(), ns, pod)
		if err != nil {
			return err
		}
		if sy.RouteSent != sy.RouteAcked {
			return fmt.Errorf("route_sent %q, route_acked %q", sy.RouteSent, sy.RouteAcked)
		}
		return nil
	})
	fireSplit(t, s, 400, 400, 0)
	if err := s.SetProxyFrozen("nobody-v9", true); err == nil || !strings.Contains(err.Error(), "nobody-v9") {
		t.Errorf("freezing an unknown workload: %v, want an error naming it", err)
	}
}

func TestStackXDSRoutesHoldWhileIstiodIsDown(t *testing.T) {
	ns := "xds-restart"
	createNamespace(t, ns)
	createCanaryRouting(t, ns, 75, 25)
	s := startXDSMesh(t, ns)
	host := fmt.Sprintf(checkoutFQDN, ns)
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": 75, "checkout/v2": 25})
	t.Cleanup(func() { // never leave the other tests without istiod
		if err := st.StartIstiod(context.Background()); err != nil {
			t.Errorf("StartIstiod: %v", err)
		}
	})
	if err := st.StopIstiod(); err != nil {
		t.Fatalf("StopIstiod: %v", err)
	}
	eventually(t, 10*time.Second, "the sidecar sees istiod go", func() error {
		if p := proxyOf(t, s, "frontend-v1"); p.Connected {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	fireSplit(t, s, 400, 100, 10) // the last routes hold
	updateWeights(t, ns, 20, 80)
	fireSplit(t, s, 400, 100, 10) // nobody pushes them yet
	if err := st.StartIstiod(t.Context()); err != nil {
		t.Fatalf("StartIstiod: %v", err)
	}
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": 20, "checkout/v2": 80})
	if p := proxyOf(t, s, "frontend-v1"); p.Connects < 2 || !p.Connected {
		t.Errorf("sidecar after istiod's restart: connected %v after %d streams, want a second stream", p.Connected, p.Connects)
	}
	fireSplit(t, s, 1000, 800, 15)
	// And the new stream gets new pushes.
	updateWeights(t, ns, 60, 40)
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/v1": 60, "checkout/v2": 40})
}

// syncStatus is one entry of istiod's /debug/syncz.
type syncStatus struct {
	Proxy      string `json:"proxy"`
	RouteSent  string `json:"route_sent"`
	RouteAcked string `json:"route_acked"`
}

// syncz returns istiod's sync status of the proxy whose ID (pod.namespace)
// is id.
func syncz(ctx context.Context, ns, id string) (syncStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.IstiodDebugURL+"/debug/syncz?namespace="+ns, nil)
	if err != nil {
		return syncStatus{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return syncStatus{}, fmt.Errorf("get /debug/syncz: %w", err)
	}
	defer resp.Body.Close()
	var all []syncStatus
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return syncStatus{}, fmt.Errorf("decode /debug/syncz: %w", err)
	}
	for _, s := range all {
		if s.Proxy == id {
			return s, nil
		}
	}
	return syncStatus{}, fmt.Errorf("proxy %s not in /debug/syncz (%d proxies)", id, len(all))
}

func TestStackXDSOverDeployments(t *testing.T) {
	const ns = "xds-deploy"
	createNamespace(t, ns)
	w := stack.App(Frontend, "v1").Plus(stack.Workloads{Services: []stack.Service{{Name: Checkout, App: Checkout}}})
	if err := st.CreateWorkloads(t.Context(), ns, w); err != nil {
		t.Fatalf("CreateWorkloads: %v", err)
	}
	s := startMeshWith(t, Options{Namespace: ns, XDSAddr: st.IstiodXDSAddr, StartDelay: 300 * time.Millisecond})
	createDeployment(t, checkoutDeployment(ns, "checkout-stable", 2, map[string]string{"serin.dev/track": "stable", "version": "v1"}, nil))
	createDeployment(t, checkoutDeployment(ns, "checkout-canary", 1, map[string]string{"serin.dev/track": "canary", "version": "v2"}, nil))
	cs := istio(t)
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: Checkout, Namespace: ns}}
	dr.Spec.Host = Checkout
	for _, track := range []string{"stable", "canary"} {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &apiv1alpha3.Subset{Name: track, Labels: map[string]string{"serin.dev/track": track}})
	}
	if _, err := cs.NetworkingV1().DestinationRules(ns).Create(t.Context(), dr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create DestinationRule: %v", err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: Checkout, Namespace: ns}}
	vs.Spec.Hosts = []string{Checkout}
	vs.Spec.Http = []*apiv1alpha3.HTTPRoute{route(nil, to(Checkout, "stable", 70), to(Checkout, "canary", 30))}
	if _, err := cs.NetworkingV1().VirtualServices(ns).Create(t.Context(), vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService: %v", err)
	}
	waitForStatus(t, ns, "checkout-stable", 10*time.Second, "rolled out", rolledOut(2))
	waitForStatus(t, ns, "checkout-canary", 10*time.Second, "rolled out", rolledOut(1))
	host := fmt.Sprintf(checkoutFQDN, ns)
	waitForWeights(t, s, "frontend-v1", host, map[string]int32{"checkout/stable": 70, "checkout/canary": 30})
	var counts map[string]int
	eventually(t, 10*time.Second, "istiod's endpoints of the Deployments' pods reach the sidecar", func() error {
		var err error
		if counts, err = s.FireWorkloads(t.Context(), 1000); err != nil {
			return err
		}
		if c := counts["checkout-canary"]; c < 285 || c > 315 || counts["checkout-stable"]+c != 1000 {
			return fmt.Errorf("1000 requests went %v, want checkout-canary 300±15 and the rest to checkout-stable", counts)
		}
		return nil
	})
	for _, name := range []string{"checkout-stable", "checkout-canary"} {
		if p := proxyOf(t, s, name); !strings.HasPrefix(p.Pod, name+"-") || !p.Connected {
			t.Errorf("sidecar of %s: pod %q connected %v, want one of its Pods connected", name, p.Pod, p.Connected)
		}
	}
}
