package prometheus

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
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

// TestRealPrometheus measures a canary from Istio-style counters scraped
// by a real Prometheus, as readings and as the differences between two
// readings that a tracker takes, then checks that a stopped Prometheus is
// reported as unavailable.
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

	s, err := New(Options{Address: st.PrometheusURL, CacheTTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// checkDifferences compares readings of instants seconds apart: each
	// is read exactly, not from a later answer (compareWithPromQL checks
	// that one).
	s.recentPast = 0
	target := subsetTarget // checkout v2 vs v1 in shop
	pair, hops := waitForData(ctx, t, s, target)

	// The counters since the mesh began, which has always had the same
	// mix of traffic.
	t.Logf("inbound: canary %s, stable %s", brief(pair.Canary), brief(pair.Stable))
	t.Logf("payments hop: canary %s, stable %s; %d hops; %d queries", brief(hops["payments"].Canary), brief(hops["payments"].Stable), len(hops), s.Queries())
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
	checkDifferences(ctx, t, s, target)
	compareWithPromQL(ctx, t, target)
	checkScopeOnPrometheus(ctx, t, s)
	checkPackedOnPrometheus(ctx, t, s)
	checkFirstError(ctx, t, s, mesh)
	checkHeldOnPrometheus(ctx, t, target)

	// Prometheus goes away: the last answer serves a reading while the
	// refresh behind it runs; once that refresh has failed, queries are
	// unavailable (a failure is never hidden behind an older answer).
	promStopped = true
	if err := st.StopPrometheus(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500*time.Millisecond + 100*time.Millisecond)
	_, _ = s.Inbound(ctx, target, time.Now())
	_, _ = s.Hops(ctx, target, time.Now())
	s.refreshing.Wait()
	_, err = s.Inbound(ctx, target, time.Now())
	if !errors.Is(err, analysis.ErrUnavailable) || !strings.Contains(err.Error(), "query Prometheus at "+st.PrometheusURL) {
		t.Errorf("Inbound after Prometheus stopped = %v, want ErrUnavailable naming %s", err, st.PrometheusURL)
	}
	_, err = s.Hops(ctx, target, time.Now())
	if !errors.Is(err, analysis.ErrUnavailable) {
		t.Errorf("Hops after Prometheus stopped = %v, want ErrUnavailable", err)
	}
	t.Logf("after stop: %v", err)
}

// checkHeldOnPrometheus: HeldInbound tells, without a query, what the
// newest shared inbound answer held says of a target: nothing before the
// first reading, then that reading's requests, errors and time.
func checkHeldOnPrometheus(ctx context.Context, t *testing.T, target analysis.Target) {
	t.Helper()
	s, err := New(Options{Address: st.PrometheusURL, CacheTTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := s.HeldInbound(target); ok || s.Queries() != 0 {
		t.Errorf("HeldInbound before any reading = %+v, %v after %d queries; want nothing held and no query", p, ok, s.Queries())
	}
	read, err := s.Inbound(ctx, target, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sent := s.Queries()
	held, ok := s.HeldInbound(target)
	switch {
	case !ok || s.Queries() != sent:
		t.Errorf("HeldInbound after a reading: ok %v, %d queries sent by it; want the answer held, no query", ok, s.Queries()-sent)
	case held.Canary.Requests != read.Canary.Requests || held.Canary.Errors != read.Canary.Errors ||
		held.Stable.Requests != read.Stable.Requests || held.Stable.Errors != read.Stable.Errors || !held.At.Equal(read.At):
		t.Errorf("HeldInbound = canary %s, stable %s at %v; want the reading's canary %s, stable %s at %v",
			brief(held.Canary), brief(held.Stable), held.At, brief(read.Canary), brief(read.Stable), read.At)
	case held.Canary.Requests == 0 || len(held.Canary.Buckets) != 0:
		t.Errorf("HeldInbound canary %+v: want the requests counted, and no latency buckets", held.Canary)
	}
}

// waitForData polls until the counters hold at least 450 requests (9 s of
// traffic) on both sides and on the payments hop.
func waitForData(ctx context.Context, t *testing.T, s *Source, target analysis.Target) (analysis.Pair, map[string]analysis.Pair) {
	t.Helper()
	begin := time.Now()
	var lastErr error
	for {
		pair, err := s.Inbound(ctx, target, time.Now())
		var hops map[string]analysis.Pair
		if err == nil {
			hops, err = s.Hops(ctx, target, time.Now())
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
			t.Fatalf("not enough data before the deadline (last: %+v, %v)", pair, lastErr)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// sleepUntil waits until the wall clock passes when, or fails the test
// when ctx ends first.
func sleepUntil(ctx context.Context, t *testing.T, when time.Time) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatalf("deadline before %v", when)
	case <-time.After(time.Until(when)):
	}
}

// checkDifferences reads the counters at two past instants 5 s apart, as
// a tracker does (the later one with a reading of now in the cache), and
// checks that their differences measure the traffic between them: about
// 250 requests a side at the mix of drive.
func checkDifferences(ctx context.Context, t *testing.T, s *Source, target analysis.Target) {
	t.Helper()
	t1 := time.Now().Add(-time.Second) // past, so every scrape before it is in
	t2 := t1.Add(5 * time.Second)
	sleepUntil(ctx, t, t2.Add(1500*time.Millisecond))
	// The present may be answered from the last answer while a refresh
	// runs: read it once the refresh is in, and its At says when it is of.
	_, _ = s.Inbound(ctx, target, time.Now())
	s.refreshing.Wait()
	now, err := s.Inbound(ctx, target, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !now.At.After(t2) {
		t.Errorf("the present reading is of %v, before t2 %v", now.At, t2)
	}
	var in [2]analysis.Pair
	var hops [2]map[string]analysis.Pair
	for k, at := range []time.Time{t1, t2} {
		if in[k], err = s.Inbound(ctx, target, at); err != nil {
			t.Fatal(err)
		}
		if hops[k], err = s.Hops(ctx, target, at); err != nil {
			t.Fatal(err)
		}
	}
	if !(in[0].Canary.Requests < in[1].Canary.Requests && in[1].Canary.Requests < now.Canary.Requests) {
		t.Errorf("canary requests at t1, t2 and now = %v, %v, %v; want them growing: a reading of the past is of its time",
			in[0].Canary.Requests, in[1].Canary.Requests, now.Canary.Requests)
	}
	canary, stable := minus(in[1].Canary, in[0].Canary), minus(in[1].Stable, in[0].Stable)
	t.Logf("over 5 s: canary %s, stable %s", brief(canary), brief(stable))
	for _, side := range []struct {
		name         string
		in, hop      analysis.Stats // the differences, inbound and to payments
		rate, tol    float64
		p99Lo, p99Hi float64
		hopLo, hopHi float64
	}{
		{"canary", canary, minus(hops[1]["payments"].Canary, hops[0]["payments"].Canary), 0.20, 0.03, 250, 500, 500, 1000},
		{"stable", stable, minus(hops[1]["payments"].Stable, hops[0]["payments"].Stable), 0.01, 0.007, 10, 25, 25, 50},
	} {
		assertBetween(t, side.name+" requests over 5 s", side.in.Requests, 150, 350)
		assertNear(t, side.name+" error rate over 5 s", side.in.ErrorRate(), side.rate, side.tol)
		assertBetween(t, side.name+" p99 over 5 s", quantileOf(side.in.Buckets), side.p99Lo, side.p99Hi)
		assertBetween(t, side.name+" → payments over 5 s", side.hop.Requests, 150, 350)
		assertBetween(t, side.name+" → payments p99 over 5 s", quantileOf(side.hop.Buckets), side.hopLo, side.hopHi)
	}
}

// brief renders the numbers of Stats for the log, with the p99 of their
// buckets.
func brief(st analysis.Stats) string {
	return fmt.Sprintf("%v requests, %v errors (rate %.4f), p99 %.1f ms", st.Requests, st.Errors, st.ErrorRate(), quantileOf(st.Buckets))
}

// quantileOf is the p99 of cumulative buckets, as the caller of a
// difference computes it.
func quantileOf(buckets []analysis.Bucket) float64 {
	bs := make([]bucket, len(buckets))
	for i, b := range buckets {
		bs[i] = bucket{upperBound: b.UpperMs, count: b.Count}
	}
	return bucketQuantile(0.99, bs)
}

// compareWithPromQL checks that the p99 and counters computed in Go from
// the shared queries, scoped to shop, equal what PromQL computes for the
// canary alone from the same raw counters at the same evaluation time.
func compareWithPromQL(ctx context.Context, t *testing.T, target analysis.Target) {
	t.Helper()
	s, err := New(Options{Address: st.PrometheusURL})
	if err != nil {
		t.Fatal(err)
	}
	// A fresh Source serves a new namespace mesh-wide for one cache TTL
	// after its first reading of the present; reading one TTL later makes
	// the measured queries scoped. That later time is past when it is
	// read, so that every scrape before it is in for both reads.
	first := time.Now()
	if _, err := s.Inbound(ctx, target, first); err != nil {
		t.Fatal(err)
	}
	at := first.Add(DefaultCacheTTL)
	sleepUntil(ctx, t, at.Add(1500*time.Millisecond))
	// A recent past instant (a rollout's baseline) is read from a shared
	// answer at least a TTL after it; Pair.At says which instant.
	pair, err := s.Inbound(ctx, target, at)
	if err != nil {
		t.Fatal(err)
	}
	if pair.At.Before(at.Add(DefaultCacheTTL)) {
		t.Errorf("a reading of %v answered at %v, less than a TTL after it", at, pair.At)
	}
	compareAt(ctx, t, s, "recent past", pair)
	// An older instant is read exactly, by queries of the rollout's own
	// (older than recentPast, shortened here so that the instant is after
	// the test's mesh began).
	s.recentPast = 0
	old := time.Now().Add(-s.stale - s.ttl - time.Second)
	pair, err = s.Inbound(ctx, target, old)
	if err != nil {
		t.Fatal(err)
	}
	if !pair.At.Equal(old) {
		t.Errorf("a reading of %v answered at %v, want exactly then", old, pair.At)
	}
	compareAt(ctx, t, s, "older past", pair)
}

// compareAt compares a pair's canary side with PromQL's own figures at
// the instant the pair was read.
func compareAt(ctx context.Context, t *testing.T, s *Source, what string, pair analysis.Pair) {
	t.Helper()
	sel := `reporter="destination", destination_service="checkout.shop.svc.cluster.local", destination_version="v2"`
	for _, c := range []struct {
		name, query string
		got         float64
	}{
		{"p99", `histogram_quantile(0.99, sum by (le) (istio_request_duration_milliseconds_bucket{` + sel + `}))`, pair.Canary.P99Ms},
		{"requests", `sum(istio_requests_total{` + sel + `})`, pair.Canary.Requests},
		{"errors", `sum(istio_requests_total{` + sel + `, response_code=~"5.."})`, pair.Canary.Errors},
	} {
		want, err := s.Scalar(ctx, c.query, pair.At)
		if err != nil {
			t.Fatalf("Scalar %s: %v", c.name, err)
		}
		if !sameFloat(c.got, want) {
			t.Errorf("%s: canary %s = %v, PromQL says %v", what, c.name, c.got, want)
		}
	}
}

// checkScopeOnPrometheus checks that the namespace matcher of the shared
// queries parses on a real Prometheus and selects by namespace: scoped to
// shop (and a regexp-quoted name that exists nowhere) each query returns
// shop's series, and scoped to "sho." none, since the dot is quoted.
func checkScopeOnPrometheus(ctx context.Context, t *testing.T, s *Source) {
	t.Helper()
	at := time.Now()
	for _, tmpl := range []string{InboundRequestsQuery, InboundLatencyQuery, HopRequestsQuery, HopLatencyQuery} {
		all, err := s.Scalar(ctx, "count("+MeshQuery(tmpl, nil)+")", at)
		if err != nil {
			t.Fatalf("mesh-wide %.60s...: %v", tmpl, err)
		}
		scoped, err := s.Scalar(ctx, "count("+MeshQuery(tmpl, []string{"shop", "no.such-namespace"})+")", at)
		if err != nil || scoped == 0 || scoped > all {
			t.Errorf("scoped to shop %.60s... = %v series, %v; want some, at most the %v mesh-wide", tmpl, scoped, err, all)
		}
		if _, err := s.Scalar(ctx, "count("+MeshQuery(tmpl, []string{"sho."})+")", at); !errors.Is(err, analysis.ErrNoData) {
			t.Errorf(`scoped to "sho." %.60s...: err = %v, want ErrNoData`, tmpl, err)
		}
	}
}

// checkFirstError sends cart v2 and v1 one OK request each, reads the
// counters, then sends v2 its first error, which creates its
// response_code="500" series at 1: the difference between that reading
// and the next that has the error is exactly that request and that error.
func checkFirstError(ctx context.Context, t *testing.T, s *Source, mesh *fakeMesh) {
	t.Helper()
	frontend, canary, stable := workload{"frontend", "v1"}, workload{"cart", "v2"}, workload{"cart", "v1"}
	const cartFQDN = "cart.shop.svc.cluster.local"
	cart := analysis.Target{Namespace: "shop", Service: "cart",
		Canary: analysis.Side{Version: "v2", Host: cartFQDN}, Stable: analysis.Side{Version: "v1", Host: cartFQDN}}
	mesh.call(frontend, canary, 200, 10)
	mesh.call(frontend, stable, 200, 10)
	first := pollInbound(ctx, t, s, cart, func(p analysis.Pair) bool { return true })
	mesh.call(frontend, canary, 500, 300)
	second := pollInbound(ctx, t, s, cart, func(p analysis.Pair) bool { return p.Canary.Errors > 0 })
	assertStats(t, "cart v2 before its first error", first.Canary, analysis.Stats{Requests: 1, Errors: 0, P99Ms: 9.95})
	assertDiff(t, "cart v2 over its first error", minus(second.Canary, first.Canary),
		analysis.Stats{Requests: 1, Errors: 1, Buckets: istioCounts(func(le float64) bool { return le >= 300 })})
	assertDiff(t, "cart v1", minus(second.Stable, first.Stable),
		analysis.Stats{Buckets: istioCounts(func(float64) bool { return false })})
}

// istioCounts is one count in each of Istio's buckets that holds says,
// none in the others.
func istioCounts(holds func(le float64) bool) []analysis.Bucket {
	var out []analysis.Bucket
	for _, le := range append(slices.Clone(istioBuckets), inf) {
		n := 0.0
		if holds(le) {
			n = 1
		}
		out = append(out, analysis.Bucket{UpperMs: le, Count: n})
	}
	return out
}

// pollInbound reads t's counters every 500 ms until ok accepts them.
func pollInbound(ctx context.Context, t *testing.T, s *Source, target analysis.Target, ok func(analysis.Pair) bool) analysis.Pair {
	t.Helper()
	for {
		p, err := s.Inbound(ctx, target, time.Now())
		if err == nil && ok(p) {
			return p
		}
		if err != nil && !errors.Is(err, analysis.ErrNoData) {
			t.Fatalf("reading %s: %v", target.Service, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("reading %s: deadline (last: %+v, %v)", target.Service, p, err)
		case <-time.After(500 * time.Millisecond):
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

// checkPackedOnPrometheus checks that a packed latency query, once
// unpacked, holds exactly the series and values of the same sum without
// packing, on a real Prometheus.
func checkPackedOnPrometheus(ctx context.Context, t *testing.T, s *Source) {
	t.Helper()
	at := time.Now()
	for _, tmpl := range []string{InboundLatencyQuery, HopLatencyQuery} {
		packed := MeshQuery(tmpl, nil)
		// The inner sum, as the query was before packing.
		inner := packed[strings.Index(packed, "label_join(")+len("label_join(") : strings.LastIndex(packed, `, "`+packLabel+`"`)]
		got := s.fetch(ctx, "packed", packed, at)
		want := s.fetch(ctx, "unpacked", inner, at)
		if got.err != nil || want.err != nil {
			t.Fatalf("packed %v, unpacked %v", got.err, want.err)
		}
		render := func(tb *table) []string {
			var out []string
			for _, r := range tb.all() {
				out = append(out, fmt.Sprintf("%s %g", r.labels, r.value))
			}
			slices.Sort(out)
			return out
		}
		g, w := render(got.samples), render(want.samples)
		if len(w) == 0 || !slices.Equal(g, w) {
			t.Errorf("%.50s...: unpacked %d series %.3q, want the %d of the sum without packing %.3q", tmpl, len(g), g, len(w), w)
		}
	}
}
