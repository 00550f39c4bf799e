package prometheus

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/serin-dev/serin/analysis"
)

// istioLabels are the labels of Istio's standard request metrics.
var istioLabels = []string{
	"reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_cluster", "source_canonical_service", "source_canonical_revision", "destination_workload",
	"destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace", "destination_cluster",
	"destination_canonical_service", "destination_canonical_revision", "request_protocol", "response_code",
	"grpc_response_status", "response_flags", "connection_security_policy",
}

// istioBuckets are Istio's default buckets for request durations, in ms.
var istioBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// workload is one version of a service in namespace shop.
type workload struct{ service, version string }

// fakeMesh exports Istio's request metrics as both sidecars of each call
// would report them.
type fakeMesh struct {
	requests *promclient.CounterVec
	duration *promclient.HistogramVec
}

func newFakeMesh(reg *promclient.Registry) *fakeMesh {
	m := &fakeMesh{
		requests: promclient.NewCounterVec(promclient.CounterOpts{Name: "istio_requests_total", Help: "Requests."}, istioLabels),
		duration: promclient.NewHistogramVec(promclient.HistogramOpts{Name: "istio_request_duration_milliseconds",
			Help: "Request durations.", Buckets: istioBuckets}, istioLabels),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// call records one request from src to dst, by both reporters.
func (m *fakeMesh) call(src, dst workload, code int, ms float64) {
	for _, reporter := range []string{"source", "destination"} {
		l := promclient.Labels{
			"reporter": reporter, "source_workload": src.service + "-" + src.version, "source_workload_namespace": "shop",
			"source_principal": "spiffe://cluster.local/ns/shop/sa/" + src.service, "source_app": src.service,
			"source_version": src.version, "source_cluster": "Kubernetes", "source_canonical_service": src.service,
			"source_canonical_revision": src.version, "destination_workload": dst.service + "-" + dst.version,
			"destination_workload_namespace": "shop", "destination_principal": "spiffe://cluster.local/ns/shop/sa/" + dst.service,
			"destination_app": dst.service, "destination_version": dst.version,
			"destination_service": dst.service + ".shop.svc.cluster.local", "destination_service_name": dst.service,
			"destination_service_namespace": "shop", "destination_cluster": "Kubernetes",
			"destination_canonical_service": dst.service, "destination_canonical_revision": dst.version,
			"request_protocol": "http", "response_code": fmt.Sprint(code), "grpc_response_status": "",
			"response_flags": "-", "connection_security_policy": map[string]string{"source": "unknown", "destination": "mutual_tls"}[reporter],
		}
		m.requests.With(l).Inc()
		m.duration.With(l).Observe(ms)
	}
}

// drive sends 50 requests/s from frontend to each of checkout v2 (20% 5xx,
// ~300 ms) and v1 (1% 5xx, ~20 ms), each followed by a call to payments:
// slow from v2 (~800 ms), fast from v1 (~30 ms). It stops when ctx ends.
func (m *fakeMesh) drive(ctx context.Context) {
	frontend, payments := workload{"frontend", "v1"}, workload{"payments", "v1"}
	canary, stable := workload{"checkout", "v2"}, workload{"checkout", "v1"}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		for range 5 {
			n++
			m.call(frontend, canary, pick(n%5 == 0, 503, 200), 280+float64(n%40))
			m.call(canary, payments, 200, 750+float64(n%100))
			m.call(frontend, stable, pick(n%100 == 0, 500, 200), 15+float64(n%10))
			m.call(stable, payments, 200, 26+float64(n%20))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func pick(cond bool, a, b int) int {
	if cond {
		return a
	}
	return b
}

// promStopped is set once the integration test has stopped the stack's
// Prometheus, which cannot be restarted in the same test binary.
var promStopped bool

// TestRealPrometheus measures a canary from Istio-style metrics scraped by
// a real Prometheus, then checks that a stopped Prometheus is reported as
// unavailable.
func TestRealPrometheus(t *testing.T) {
	if promStopped {
		t.Fatal("the stack's Prometheus was stopped by an earlier run of this test: run with -count=1")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	reg := promclient.NewRegistry()
	mesh := newFakeMesh(reg)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { mesh.drive(ctx) })
	if err := st.SetScrapeTargets("istio-mesh", []string{srv.Listener.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.SetScrapeTargets("istio-mesh", nil) }()

	const window = 10 * time.Second
	s, err := New(Options{Address: st.PrometheusURL, CacheTTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	target := subsetTarget // checkout v2 vs v1 in shop
	pair, hops := waitForData(ctx, t, s, target, window)

	t.Logf("inbound: canary %+v (rate %.3f), stable %+v (rate %.4f)", pair.Canary, pair.Canary.ErrorRate(), pair.Stable, pair.Stable.ErrorRate())
	t.Logf("payments hop: %+v; all hops %v; %d queries", hops["payments"], hops, s.Queries())
	assertNear(t, "canary error rate", pair.Canary.ErrorRate(), 0.20, 0.03)
	assertNear(t, "stable error rate", pair.Stable.ErrorRate(), 0.01, 0.007)
	assertBetween(t, "canary p99", pair.Canary.P99Ms, 250, 500)
	assertBetween(t, "stable p99", pair.Stable.P99Ms, 10, 25)
	pay := hops["payments"]
	assertBetween(t, "canary → payments p99", pay.Canary.P99Ms, 500, 1000)
	assertBetween(t, "stable → payments p99", pay.Stable.P99Ms, 25, 50)
	if len(hops) != 1 || pay.Canary.Errors != 0 {
		t.Errorf("hops = %+v, want only payments, without errors", hops)
	}
	compareWithPromQL(ctx, t, target, window)
	checkScopeOnPrometheus(ctx, t, s, window)

	// Prometheus goes away: after the cache TTL, queries are unavailable.
	promStopped = true
	if err := st.StopPrometheus(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	_, err = s.Inbound(ctx, target, window, time.Now())
	if !errors.Is(err, analysis.ErrUnavailable) || !strings.Contains(err.Error(), "query Prometheus at "+st.PrometheusURL) {
		t.Errorf("Inbound after Prometheus stopped = %v, want ErrUnavailable naming %s", err, st.PrometheusURL)
	}
	_, err = s.Hops(ctx, target, window, time.Now())
	if !errors.Is(err, analysis.ErrUnavailable) {
		t.Errorf("Hops after Prometheus stopped = %v, want ErrUnavailable", err)
	}
	t.Logf("after stop: %v", err)
}

// waitForData polls until the window holds at least 9 s of traffic on both
// sides and on the payments hop, so that the 5xx series, which appear with
// the first error, span the window too.
func waitForData(ctx context.Context, t *testing.T, s *Source, target analysis.Target, window time.Duration) (analysis.Pair, map[string]analysis.Pair) {
	t.Helper()
	begin := time.Now()
	var lastErr error
	for {
		pair, err := s.Inbound(ctx, target, window, time.Now())
		var hops map[string]analysis.Pair
		if err == nil {
			hops, err = s.Hops(ctx, target, window, time.Now())
		}
		if err == nil && pair.Canary.Requests >= 450 && pair.Stable.Requests >= 450 &&
			hops["payments"].Canary.Requests >= 450 && hops["payments"].Stable.Requests >= 450 {
			t.Logf("data after %v", time.Since(begin).Round(100*time.Millisecond))
			return pair, hops
		}
		if err != nil && !errors.Is(err, analysis.ErrNoData) {
			t.Fatalf("waiting for data: %v", err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("no full window of data before the deadline (last: %+v, %v)", pair, lastErr)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// compareWithPromQL checks that the p99 and counts computed in Go from the
// shared queries, scoped to shop, equal what PromQL computes for the
// canary alone at the same evaluation time.
func compareWithPromQL(ctx context.Context, t *testing.T, target analysis.Target, window time.Duration) {
	t.Helper()
	s, err := New(Options{Address: st.PrometheusURL})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	// A fresh Source serves a new namespace mesh-wide for one cache TTL;
	// asking one TTL earlier first makes the measured queries scoped.
	if _, err := s.Inbound(ctx, target, window, at.Add(-DefaultCacheTTL)); err != nil {
		t.Fatal(err)
	}
	pair, err := s.Inbound(ctx, target, window, at)
	if err != nil {
		t.Fatal(err)
	}
	sel := `reporter="destination", destination_service="checkout.shop.svc.cluster.local", destination_version="v2"`
	for _, c := range []struct {
		name, query string
		got         float64
	}{
		{"p99", `histogram_quantile(0.99, sum by (le) (increase(istio_request_duration_milliseconds_bucket{` + sel + `}[10s])))`, pair.Canary.P99Ms},
		{"requests", `sum(increase(istio_requests_total{` + sel + `}[10s]))`, pair.Canary.Requests},
		{"errors", `sum(increase(istio_requests_total{` + sel + `, response_code=~"5.."}[10s]))`, pair.Canary.Errors},
	} {
		want, err := s.Scalar(ctx, c.query, at)
		if err != nil {
			t.Fatalf("Scalar %s: %v", c.name, err)
		}
		if !sameFloat(c.got, want) {
			t.Errorf("canary %s = %v, PromQL says %v", c.name, c.got, want)
		}
	}
}

// checkScopeOnPrometheus checks that the namespace matcher of the shared
// queries parses on a real Prometheus and selects by namespace: scoped to
// shop (and a regexp-quoted name that exists nowhere) each query returns
// shop's series, and scoped to "sho." none, since the dot is quoted.
func checkScopeOnPrometheus(ctx context.Context, t *testing.T, s *Source, window time.Duration) {
	t.Helper()
	at := time.Now()
	for _, tmpl := range []string{InboundRequestsQuery, InboundLatencyQuery, HopRequestsQuery, HopLatencyQuery} {
		all, err := s.Scalar(ctx, "count("+MeshQuery(tmpl, window, nil)+")", at)
		if err != nil {
			t.Fatalf("mesh-wide %.60s...: %v", tmpl, err)
		}
		scoped, err := s.Scalar(ctx, "count("+MeshQuery(tmpl, window, []string{"shop", "no.such-namespace"})+")", at)
		if err != nil || scoped == 0 || scoped > all {
			t.Errorf("scoped to shop %.60s... = %v series, %v; want some, at most the %v mesh-wide", tmpl, scoped, err, all)
		}
		if _, err := s.Scalar(ctx, "count("+MeshQuery(tmpl, window, []string{"sho."})+")", at); !errors.Is(err, analysis.ErrNoData) {
			t.Errorf(`scoped to "sho." %.60s...: err = %v, want ErrNoData`, tmpl, err)
		}
	}
}

func assertNear(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if !(got >= want-tol && got <= want+tol) {
		t.Errorf("%s = %v, want %v ± %v", what, got, want, tol)
	}
}

func assertBetween(t *testing.T, what string, got, lo, hi float64) {
	t.Helper()
	if !(got > lo && got <= hi) {
		t.Errorf("%s = %v, want in (%v, %v]", what, got, lo, hi)
	}
}
