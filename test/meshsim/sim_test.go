package meshsim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	apiv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// These tests run the simulator without an API server: they set the routing
// table directly, so they exercise the data plane alone.

// startLocal starts a Sim with no watch and no tracing, closed at cleanup.
func startLocal(t *testing.T, o Options) *Sim {
	t.Helper()
	if o.FireRPS == 0 {
		o.FireRPS = MaxRPS // loopback only, and bounded by n
	}
	s, err := Start(t.Context(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("meshsim seed %d (Options.Seed replays its draws)", s.Seed())
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// series sums, over the series of family name whose labels include want,
// the counter value (or histogram count) and the histogram sum.
func series(t *testing.T, s *Sim, name string, want map[string]string) (count, sum float64) {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				count += float64(h.GetSampleCount())
				sum += h.GetSampleSum()
			} else {
				count += m.GetCounter().GetValue()
			}
		}
	}
	return count, sum
}

// hasLabels reports whether m carries every label in want.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// setWeights installs a VirtualService checkout → v1/v2 with the weights.
func setWeights(t *testing.T, s *Sim, v1, v2 int32) {
	t.Helper()
	v := vs("checkout", 1, &apiv1alpha3.VirtualService{Hosts: []string{"checkout"}, Http: []*apiv1alpha3.HTTPRoute{
		route(nil, to("checkout", "v1", v1), to("checkout", "v2", v2)),
	}})
	v.Namespace = s.Namespace()
	d := dr("checkout", "v1", "v2")
	d.Namespace = s.Namespace()
	tbl, errs := buildTable([]*networkingv1.VirtualService{v}, []*networkingv1.DestinationRule{d})
	if len(errs) > 0 {
		t.Fatalf("buildTable: %v", errs)
	}
	s.router.table.Store(tbl)
}

func TestStartRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"non-loopback listen host", Options{ListenHost: "0.0.0.0"}, "loopback"},
		{"non-loopback control", Options{ControlAddr: ":8080"}, "loopback"},
		{"bad namespace", Options{Namespace: "Shop_1"}, "namespace"},
		{"rps too high", Options{RPS: MaxRPS + 1}, "rps"},
		{"negative fire rps", Options{FireRPS: -1}, "fire rps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(t.Context(), tc.o)
			if err == nil {
				_ = s.Close()
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDefaultRoutingAndIstioLabels(t *testing.T) {
	s := startLocal(t, Options{Namespace: "shop"})
	counts, err := s.Fire(t.Context(), 20)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if counts["v1"] != 20 {
		t.Fatalf("counts = %v, want all 20 on v1 without a VirtualService", counts)
	}
	want := map[string]map[string]string{
		"ingress → frontend, destination": {"reporter": "destination", "source_workload": "unknown",
			"source_principal": "unknown", "destination_workload": "frontend-v1", "connection_security_policy": "none"},
		"frontend → checkout, source": {"reporter": "source", "source_workload": "frontend-v1", "source_app": "frontend",
			"source_version": "v1", "source_canonical_service": "frontend", "source_canonical_revision": "v1",
			"source_workload_namespace": "shop", "source_principal": "spiffe://cluster.local/ns/shop/sa/frontend",
			"source_cluster": "Kubernetes", "destination_workload": "checkout-v1", "destination_app": "checkout",
			"destination_version": "v1", "destination_service": "checkout.shop.svc.cluster.local",
			"destination_service_name": "checkout", "destination_service_namespace": "shop",
			"destination_canonical_service": "checkout", "destination_canonical_revision": "v1",
			"destination_principal": "spiffe://cluster.local/ns/shop/sa/checkout", "destination_cluster": "Kubernetes",
			"destination_workload_namespace": "shop", "response_code": "200", "response_flags": "-",
			"request_protocol": "http", "connection_security_policy": "unknown"},
		"frontend → checkout, destination": {"reporter": "destination", "source_workload": "frontend-v1",
			"destination_workload": "checkout-v1", "connection_security_policy": "mutual_tls"},
		"checkout → payments, destination": {"reporter": "destination", "source_workload": "checkout-v1",
			"destination_service_name": "payments", "destination_workload": "payments-v1"},
		"checkout → inventory, source": {"reporter": "source", "source_workload": "checkout-v1",
			"destination_service_name": "inventory", "destination_workload": "inventory-v1"},
	}
	for name, labels := range want {
		if n, _ := series(t, s, "istio_requests_total", labels); n != 20 {
			t.Errorf("%s: istio_requests_total = %v, want 20", name, n)
		}
		if n, _ := series(t, s, "istio_request_duration_milliseconds", labels); n != 20 {
			t.Errorf("%s: duration count = %v, want 20", name, n)
		}
	}
	if n, _ := series(t, s, "istio_requests_total", map[string]string{"reporter": "source", "source_workload": "unknown"}); n != 0 {
		t.Errorf("the load generator has no sidecar, yet %v source-reported requests came from it", n)
	}
	body := httpGet(t, "http://"+s.MetricsAddr()+"/metrics")
	for _, w := range []string{"istio_requests_total{", `istio_request_duration_milliseconds_bucket{`, `le="0.5"`, `le="3.6e+06"`} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

func TestWeightedSplitAndHostMode(t *testing.T) {
	s := startLocal(t, Options{})
	setWeights(t, s, 75, 25)
	counts, err := s.Fire(t.Context(), 400)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if got := float64(counts["v2"]) / 400; got < 0.22 || got > 0.28 {
		t.Errorf("canary share = %.3f (%v), want 0.25±0.03", got, counts)
	}
	v := vs("checkout", 1, &apiv1alpha3.VirtualService{Hosts: []string{"checkout"}, Http: []*apiv1alpha3.HTTPRoute{
		route(nil, to("checkout-primary", "", 0), to("checkout-canary", "", 100)),
	}})
	tbl, _ := buildTable([]*networkingv1.VirtualService{v}, nil)
	s.router.table.Store(tbl)
	if counts, err = s.Fire(t.Context(), 10); err != nil || counts["v2"] != 10 {
		t.Fatalf("host mode: counts = %v, err = %v; want 10 on v2", counts, err)
	}
	if n, _ := series(t, s, "istio_requests_total", map[string]string{"reporter": "destination",
		"destination_workload": "checkout-v2", "destination_service_name": "checkout-canary",
		"destination_service": "checkout-canary.shop.svc.cluster.local"}); n != 10 {
		t.Errorf("host mode: %v requests reported for destination_service_name checkout-canary, want 10", n)
	}
}

func TestFaultErrorRateAndLatency(t *testing.T) {
	s := startLocal(t, Options{})
	if err := s.SetFault("checkout", "v1", Fault{ErrorRate: 0.5, LatencyMs: 30}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	// Errors are drawn at random per request, so the count is binomial:
	// 400 requests at 0.5 have a standard deviation of 10, and 200±40 is
	// four of them.
	if _, err := s.Fire(t.Context(), 400); err != nil {
		t.Fatalf("Fire: %v", err)
	}
	dst := map[string]string{"reporter": "destination", "destination_workload": "checkout-v1"}
	total, sum := series(t, s, "istio_request_duration_milliseconds", dst)
	dst["response_code"] = "500"
	failed, _ := series(t, s, "istio_requests_total", dst)
	if total != 400 || failed < 160 || failed > 240 {
		t.Errorf("checkout-v1 answered %v of %v requests with 500, want 200±40 of 400", failed, total)
	}
	if mean := sum / total; mean < 30 {
		t.Errorf("checkout-v1 mean inbound latency %.1f ms, want at least the injected 30 ms", mean)
	}
	if n, _ := series(t, s, "istio_requests_total", map[string]string{"reporter": "destination",
		"destination_workload": "frontend-v1", "response_code": "502"}); n != failed {
		t.Errorf("frontend answered %v requests with 502, want the %v that checkout failed", n, failed)
	}
	if err := s.SetFault("checkout", "v3", Fault{}); !errors.Is(err, ErrUnknownWorkload) {
		t.Errorf("SetFault(checkout, v3) = %v, want ErrUnknownWorkload", err)
	}
	if err := s.SetFault("checkout", "v1", Fault{ErrorRate: 2}); !errors.Is(err, ErrInvalidFault) {
		t.Errorf("SetFault(errorRate 2) = %v, want ErrInvalidFault", err)
	}
	if got := s.Faults()["checkout/v1"]; got.ErrorRate != 0.5 {
		t.Errorf("a refused fault changed the table: %+v", got)
	}
}

func TestAmplificationIsAsynchronous(t *testing.T) {
	s := startLocal(t, Options{})
	setWeights(t, s, 0, 100)
	if err := s.SetFault("checkout", "v2", Fault{DownstreamCalls: 3, DownstreamLatencyMs: 200}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	if _, err := s.Fire(t.Context(), 20); err != nil {
		t.Fatalf("Fire: %v", err)
	}
	hop := map[string]string{"reporter": "source", "source_workload": "checkout-v2", "destination_service_name": "payments"}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := series(t, s, "istio_requests_total", hop); n < 60; n, _ = series(t, s, "istio_requests_total", hop) {
		if time.Now().After(deadline) {
			t.Fatalf("checkout-v2 → payments: %v calls, want 3 × 20 = 60", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n, sum := series(t, s, "istio_request_duration_milliseconds", hop)
	if mean := sum / n; mean < 200 {
		t.Errorf("checkout-v2 → payments mean %.1f ms, want at least the added 200 ms", mean)
	}
	in, inSum := series(t, s, "istio_request_duration_milliseconds",
		map[string]string{"reporter": "destination", "destination_workload": "checkout-v2"})
	if mean := inSum / in; in != 20 || mean > 50 {
		t.Errorf("checkout-v2 inbound: %v requests, mean %.1f ms; want 20 and well under the 200 ms downstream delay", in, mean)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Start(t.Context(), Options{RPS: 100})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.SetFault("checkout", "v1", Fault{DownstreamCalls: 2, DownstreamLatencyMs: 300}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // background load and amplified calls in flight
	addrs := append([]string{s.MetricsAddr(), strings.TrimPrefix(s.ControlURL(), "http://")}, mapValues(s.WorkloadAddrs())...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// mapValues returns m's values.
func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestFireHonoursContext(t *testing.T) {
	s := startLocal(t, Options{FireRPS: 10})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	counts, err := s.Fire(ctx, 100)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fire = %v, want a deadline error", err)
	}
	if n := counts["v1"]; n == 0 || n > 10 {
		t.Errorf("Fire sent %d requests in 300 ms at 10 rps, want a few", n)
	}
}
