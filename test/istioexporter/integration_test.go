package istioexporter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istio "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/analysis/prometheus"
)

// TestOnTheRealStack: the weights come from real VirtualServices through
// the informer, a change applies while it runs, and the real Prometheus
// scraping the exporter answers serin's own shared queries with each
// version's requests, its injected errors and its downstream calls.
func TestOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("exporter-%d", rand.IntN(1_000_000))
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	must(t, err)
	_, err = kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(t, err)
	ic, err := istio.NewForConfig(st.RESTConfig())
	must(t, err)
	vss := ic.NetworkingV1().VirtualServices(ns)
	for svc, canary := range map[string]int32{"service-0001": 0, "service-0002": 50} {
		_, err := vss.Create(ctx, routeVS(ns, svc, canary), metav1.CreateOptions{})
		must(t, err)
	}

	e, err := Start(ctx, Options{Namespace: ns, Services: 3, RPS: 200, Seed: 1, RESTConfig: st.RESTConfig(), ServicesPerTarget: 2})
	must(t, err)
	defer e.Close()
	if len(e.Targets()) != 2 {
		t.Fatalf("3 services at 2 per target: targets %v", e.Targets())
	}
	for svc, want := range map[string]struct {
		w  int32
		ok bool
	}{"service-0001": {0, true}, "service-0002": {50, true}, "service-0003": {0, false}} {
		if w, ok := e.CanaryWeight(svc); w != want.w || ok != want.ok {
			t.Errorf("%s right after Start: weight %d, %v; want %d, %v", svc, w, ok, want.w, want.ok)
		}
	}
	// A weight change reaches the exporter through the watch.
	vs, err := vss.Get(ctx, "service-0001", metav1.GetOptions{})
	must(t, err)
	vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = 80, 20
	_, err = vss.Update(ctx, vs, metav1.UpdateOptions{})
	must(t, err)
	eventually(t, 10*time.Second, "service-0001 at weight 20", func() (bool, string) {
		w, ok := e.CanaryWeight("service-0001")
		return w == 20 && ok, fmt.Sprint(w, ok)
	})
	must(t, e.SetFault("service-0002", CanaryVersion, Fault{ErrorRate: 0.5}))

	job := "istioexporter-" + ns
	must(t, st.SetScrapeTargets(job, e.Targets()))
	defer func() { _ = st.SetScrapeTargets(job, nil) }()
	pc, err := promapi.NewClient(promapi.Config{Address: st.PrometheusURL})
	must(t, err)
	api := promv1.NewAPI(pc)
	inbound := prometheus.MeshQuery(prometheus.InboundRequestsQuery, []string{ns})
	hops := prometheus.MeshQuery(prometheus.HopRequestsQuery, []string{ns})
	eventually(t, 60*time.Second, "serin's shared queries to see every version", func() (bool, string) {
		in, err := sums(ctx, api, inbound, "destination_workload", "response_code")
		if err != nil {
			return false, err.Error()
		}
		out, err := sums(ctx, api, hops, "source_workload", "destination_service_name")
		if err != nil {
			return false, err.Error()
		}
		ok := in["service-0001-v1 200"] > 0 && in["service-0001-v2 200"] > 0 &&
			in["service-0002-v2 500"] > 0 && in["service-0002-v2 200"] > 0 && in["service-0003-v1 200"] > 0 &&
			out["service-0002-v2 service-0002-store"] > 0
		return ok, fmt.Sprintf("inbound %v, hops %v", in, out)
	})
	in, err := sums(ctx, api, inbound, "destination_workload", "response_code")
	must(t, err)
	for _, absent := range []string{"service-0003-v2 200", "service-0001-v1 500", "service-0002-v1 500"} {
		if in[absent] != 0 {
			t.Errorf("%s: %v requests, want none (no route, or no fault)", absent, in[absent])
		}
	}
}

// routeVS is the VirtualService of service svc in namespace ns, its route
// "primary" at 100-canary/canary.
func routeVS(ns, svc string, canary int32) *networkingv1.VirtualService {
	h := Host(ns, svc)
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: ns}}
	vs.Spec.Hosts = []string{h}
	vs.Spec.Http = []*istioapi.HTTPRoute{{Name: "primary", Route: []*istioapi.HTTPRouteDestination{
		{Destination: &istioapi.Destination{Host: h, Subset: StableVersion}, Weight: 100 - canary},
		{Destination: &istioapi.Destination{Host: h, Subset: CanaryVersion}, Weight: canary},
	}}}
	return vs
}

// sums runs query now and adds up its samples by the two labels, keyed
// "a b".
func sums(ctx context.Context, api promv1.API, query, a, b string) (map[string]float64, error) {
	v, _, _, err := api.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s: a %s, not a vector", query, v.Type())
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[string(s.Metric[model.LabelName(a)])+" "+string(s.Metric[model.LabelName(b)])] += float64(s.Value)
	}
	return out, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 100 ms until it holds, or fails the test
// after timeout with cond's last word.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
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
