package prometheus

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/serin-dev/serin/analysis"
)

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// meshSeries is what the fake mesh reports for n services svc-0..svc-(n-1)
// in namespace mesh, each with v2 (canary) and v1 (stable), per shared
// query, as counters since they began: svc-i v2 has received i+1 OK
// requests and one 500 and called db i+1 times; v1 has received 2(i+1) and
// called db 3 times.
func meshSeries(n int) map[string][]sample { return addSeries(map[string][]sample{}, "mesh", n) }

// addSeries adds to out the series of meshSeries for n services in
// namespace ns.
func addSeries(out map[string][]sample, ns string, n int) map[string][]sample {
	for i := range n {
		svc := fmt.Sprintf("svc-%d", i)
		host := svc + "." + ns + ".svc.cluster.local"
		dst := func(version string, kv ...string) []string {
			return append([]string{"destination_workload_namespace", ns, "destination_service", host,
				"destination_service_name", svc, "destination_canonical_service", svc,
				"destination_workload", svc + "-" + version, "destination_version", version}, kv...)
		}
		src := func(version string, kv ...string) []string {
			return append([]string{"source_workload_namespace", ns, "source_workload", svc + "-" + version,
				"source_canonical_service", svc, "source_version", version, "destination_service", "db." + ns + ".svc.cluster.local",
				"destination_service_name", "db", "destination_canonical_service", "db"}, kv...)
		}
		out[InboundRequestsQuery] = append(out[InboundRequestsQuery],
			smp(float64(i+1), dst("v2", "response_code", "200")...), smp(1, dst("v2", "response_code", "500")...),
			smp(float64(2*(i+1)), dst("v1", "response_code", "200")...))
		out[InboundLatencyQuery] = append(out[InboundLatencyQuery],
			smp(0, dst("v2", "le", "100")...), smp(10, dst("v2", "le", "250")...), smp(10, dst("v2", "le", "+Inf")...),
			smp(10, dst("v1", "le", "25")...), smp(10, dst("v1", "le", "+Inf")...))
		out[HopRequestsQuery] = append(out[HopRequestsQuery],
			smp(float64(i+1), src("v2", "response_code", "200")...), smp(3, src("v1", "response_code", "200")...))
		out[HopLatencyQuery] = append(out[HopLatencyQuery],
			smp(5, src("v2", "le", "1000")...), smp(5, src("v2", "le", "+Inf")...))
	}
	return out
}

// meshTarget is svc-i in namespace mesh: subset mode for even i, Match by
// workload (without a namespace, so it cannot be scoped) for odd i.
func meshTarget(i int) analysis.Target {
	t := targetIn("mesh", i)
	if i%2 == 1 {
		t.Canary.Match = map[string]string{"destination_workload": t.Service + "-v2"}
		t.Stable.Match = map[string]string{"destination_workload": t.Service + "-v1"}
	}
	return t
}

// targetIn is svc-i of addSeries in namespace ns, in subset mode.
func targetIn(ns string, i int) analysis.Target {
	svc := fmt.Sprintf("svc-%d", i)
	host := svc + "." + ns + ".svc.cluster.local"
	return analysis.Target{Namespace: ns, Service: svc,
		Canary: analysis.Side{Version: "v2", Host: host}, Stable: analysis.Side{Version: "v1", Host: host}}
}

// newMeshProm serves meshSeries(n), after delay.
func newMeshProm(t *testing.T, n int, delay time.Duration) *fakeProm {
	return newSeriesProm(t, meshSeries(n), delay)
}

// nsMatcher is the namespace matcher that MeshQuery puts in a selector.
var nsMatcher = regexp.MustCompile(`, ((?:destination|source)_workload_namespace)=~("(?:[^"\\]|\\.)*")`)

// extraMatchers takes out of q the matchers that follow its reporter
// matcher (those MeshQuery and the past readings' selectors add), parsed
// with Prometheus's own PromQL parser, and returns the template's text and
// a test of a sample against them, as Prometheus would apply them.
func extraMatchers(q string) (string, func(sample) bool, error) {
	i := strings.Index(q, `reporter="`)
	if i < 0 {
		return q, func(sample) bool { return true }, nil
	}
	j := i + len(`reporter="`) + strings.Index(q[i+len(`reporter="`):], `"`) + 1
	k := j + strings.Index(q[j:], "}")
	extra := strings.TrimPrefix(q[j:k], ",")
	if strings.TrimSpace(extra) == "" {
		return q, func(sample) bool { return true }, nil
	}
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector("{" + extra + "}")
	if err != nil {
		return "", nil, err
	}
	keep := func(s sample) bool {
		for _, m := range ms {
			if !m.Matches(string(s.labels.get(model.LabelName(m.Name)))) {
				return false
			}
		}
		return true
	}
	return q[:j] + q[k:], keep, nil
}

// newSeriesProm serves the shared queries over series (by template), after
// delay, applying their namespace matcher as Prometheus would.
func newSeriesProm(t *testing.T, series map[string][]sample, delay time.Duration) *fakeProm {
	return newSeriesPromAt(t, func(time.Time) map[string][]sample { return series }, delay)
}

// newSeriesPromAt is newSeriesProm with the series as they stand at each
// evaluation time.
func newSeriesPromAt(t *testing.T, seriesAt func(at time.Time) map[string][]sample, delay time.Duration) *fakeProm {
	return newFakePromAt(t, func(ctx context.Context, q string, at time.Time) (int, string) {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		q, keep, err := extraMatchers(q)
		if err != nil {
			return 400, fmt.Sprintf(`{"status":"error","errorType":"bad_data","error":%q}`, err.Error())
		}
		for tmpl, samples := range seriesAt(at) {
			if q == MeshQuery(tmpl, nil) {
				var out []sample
				for _, s := range samples {
					if keep(s) {
						out = append(out, s)
					}
				}
				return 200, vectorBody(out...)
			}
		}
		return 400, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`
	})
}

// TestBatching runs Inbound and Hops for 100 rollouts concurrently within
// one TTL and checks that exactly the four shared queries reach
// Prometheus and that each rollout gets its own numbers.
func TestBatching(t *testing.T) {
	const n = 100
	f := newMeshProm(t, n, 50*time.Millisecond)
	s := newSource(t, f.URL, time.Second)
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s.now = clock.Now
	at := clock.Now()

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() { errs <- checkInbound(t.Context(), s, i, at) })
		wg.Go(func() { errs <- checkHops(t.Context(), s, i, at) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.queries.Load(); got != 4 {
		t.Errorf("server received %d queries for %d rollouts, want 4", got, n)
	}
	if got := s.Queries(); got != 4 {
		t.Errorf("Queries() = %d, want 4", got)
	}

	// Within the TTL: served from the cache.
	clock.Add(900 * time.Millisecond)
	if err := checkInbound(t.Context(), s, 7, at.Add(900*time.Millisecond)); err != nil {
		t.Error(err)
	}
	assertQueries(t, s, f, 4, "within the TTL")
	// After the TTL: answered from the last result at once, while one
	// refresh per query runs behind it.
	clock.Add(100 * time.Millisecond)
	for range 10 {
		if err := checkInbound(t.Context(), s, 7, at.Add(time.Second)); err != nil {
			t.Error(err)
		}
	}
	waitQueries(t, s, f, 6, "after the TTL")
	// Past MaxStale (two TTLs by default) the last result is no longer
	// current: a reading is served it while a refresh of each query runs
	// at once (see TestLateRefreshServesTheHeldAnswer).
	clock.Add(2 * time.Second)
	if err := checkInbound(t.Context(), s, 7, at.Add(3*time.Second)); err != nil {
		t.Error(err)
	}
	waitQueries(t, s, f, 8, "past MaxStale")
	// An evaluation time far from the cached one is not served from the
	// cache (see TestReadingOfThePast).
	if _, err := s.Inbound(t.Context(), meshTarget(7), at.Add(-time.Hour)); err != nil {
		t.Error(err)
	}
	assertQueries(t, s, f, 10, "for another evaluation time")
	// The queries read the raw counters: no range, so no window to vary,
	// and no function that extrapolates.
	for _, tmpl := range []string{InboundRequestsQuery, InboundLatencyQuery, HopRequestsQuery, HopLatencyQuery} {
		if q := MeshQuery(tmpl, nil); strings.ContainsAny(q, "[]") || strings.Contains(q, "increase(") || strings.Contains(q, "rate(") {
			t.Errorf("MeshQuery = %s, want a raw sum of the counters", q)
		}
	}
	if want := `(istio_requests_total{reporter="destination"})`; !strings.HasSuffix(MeshQuery(InboundRequestsQuery, nil), want) {
		t.Errorf("MeshQuery(InboundRequestsQuery) = %s, want it to end with %s", MeshQuery(InboundRequestsQuery, nil), want)
	}
}

// TestReaderJoinsTheRefreshUnderWay: a reading that finds the newest
// answer too old while the refresh behind it still runs (it takes longer
// than the last) waits for that refresh, and sends no second copy of the
// shared queries.
func TestReaderJoinsTheRefreshUnderWay(t *testing.T) {
	f := newMeshProm(t, 3, time.Second)
	s := newSource(t, f.URL, time.Second)
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s.now = clock.Now
	at := clock.Now()
	if err := checkInbound(t.Context(), s, 1, at); err != nil {
		t.Fatal(err)
	}
	assertQueries(t, s, f, 2, "the first reading")
	// Past the TTL: answered from the last answer, a refresh behind it.
	clock.Add(time.Second)
	if err := checkInbound(t.Context(), s, 1, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// Past MaxStale while that refresh is still under way (the fake takes
	// a second of real time): the reading is served the answer held while
	// it runs, and sends no query of its own.
	clock.Add(1500 * time.Millisecond)
	if err := checkInbound(t.Context(), s, 1, at.Add(2500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitQueries(t, s, f, 4, "a reading past MaxStale during a refresh")
}

func assertQueries(t *testing.T, s *Source, f *fakeProm, want int64, when string) {
	t.Helper()
	if got, sent := f.queries.Load(), s.Queries(); got != want || sent != want {
		t.Errorf("%s: server received %d queries, Queries() = %d; want %d", when, got, sent, want)
	}
}

// waitQueries is assertQueries for queries sent in the background: it
// waits for the refreshes under way first.
func waitQueries(t *testing.T, s *Source, f *fakeProm, want int64, when string) {
	t.Helper()
	s.refreshing.Wait()
	assertQueries(t, s, f, want, when)
}

// checkInbound checks the numbers of svc-i described at meshSeries.
func checkInbound(ctx context.Context, s *Source, i int, at time.Time) error {
	return checkInboundOf(ctx, s, meshTarget(i), i, at)
}

// checkInboundOf checks the numbers of svc-i, target tg.
func checkInboundOf(ctx context.Context, s *Source, tg analysis.Target, i int, at time.Time) error {
	p, err := s.Inbound(ctx, tg, at)
	if err != nil {
		return fmt.Errorf("Inbound %s/svc-%d: %w", tg.Namespace, i, err)
	}
	want := analysis.Pair{Canary: analysis.Stats{Requests: float64(i + 2), Errors: 1, P99Ms: 248.5},
		Stable: analysis.Stats{Requests: float64(2 * (i + 1)), P99Ms: 24.75}}
	if !sameStats(p.Canary, want.Canary) || !sameStats(p.Stable, want.Stable) {
		return fmt.Errorf("Inbound %s/svc-%d = %+v, want %+v", tg.Namespace, i, p, want)
	}
	return nil
}

// checkHops checks the hops of svc-i described at meshSeries.
func checkHops(ctx context.Context, s *Source, i int, at time.Time) error {
	return checkHopsOf(ctx, s, meshTarget(i), i, at)
}

// checkHopsOf checks the hops of svc-i, target tg.
func checkHopsOf(ctx context.Context, s *Source, tg analysis.Target, i int, at time.Time) error {
	h, err := s.Hops(ctx, tg, at)
	if err != nil {
		return fmt.Errorf("Hops %s/svc-%d: %w", tg.Namespace, i, err)
	}
	db, ok := h["db"]
	if len(h) != 1 || !ok || db.Canary.Requests != float64(i+1) || db.Stable.Requests != 3 ||
		db.Canary.P99Ms != 990 || !sameFloat(db.Stable.P99Ms, nan()) {
		return fmt.Errorf("Hops %s/svc-%d = %+v, want db: canary %d requests with p99 990, stable 3 with NaN", tg.Namespace, i, h, i+1)
	}
	return nil
}

// TestFailureShared checks that a failed shared query is shared for the
// TTL like a result, so that an unavailable Prometheus is not asked once
// per rollout.
func TestFailureShared(t *testing.T) {
	f := newFakeProm(t, func(context.Context, string) (int, string) { return 500, "boom" })
	s := newSource(t, f.URL, time.Second)
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s.now = clock.Now
	for i := range 10 {
		if _, err := s.Inbound(t.Context(), meshTarget(i), clock.Now()); !errors.Is(err, analysis.ErrUnavailable) {
			t.Fatalf("Inbound = %v, want ErrUnavailable", err)
		}
	}
	assertQueries(t, s, f, 2, "10 rollouts, Prometheus failing")
	clock.Add(time.Second)
	_, _ = s.Inbound(t.Context(), meshTarget(0), clock.Now())
	assertQueries(t, s, f, 4, "after the TTL")
}

// TestCallerGivesUp checks that a caller whose context ends gets
// ErrUnavailable at once, while the shared query still serves the others.
func TestCallerGivesUp(t *testing.T) {
	f := newMeshProm(t, 2, 200*time.Millisecond)
	s := newSource(t, f.URL, time.Second)
	at := time.Now()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- checkInbound(t.Context(), s, 1, at) }()
	_, err := s.Inbound(ctx, meshTarget(0), at)
	if !errors.Is(err, analysis.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Inbound with an expiring context = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the other caller: %v", err)
	}
	assertQueries(t, s, f, 2, "two callers")
}

// sameStats compares the measured numbers of two Stats.
func sameStats(a, b analysis.Stats) bool {
	return a.Requests == b.Requests && a.Errors == b.Errors && a.P99Ms == b.P99Ms
}

// TestSlowPrometheusIsNotAskedOncePerCaller has Prometheus take three
// cache TTLs to answer while ten rollouts read the present, each at its
// own pace.
// Each answer then serves the readings until the next arrives, the next
// is asked for only once the answer is as old as it took to come, and a
// caller that came late joins the next shared flight: the queries sent
// are a few per two answer times, not one per late caller.
func TestSlowPrometheusIsNotAskedOncePerCaller(t *testing.T) {
	const delay, run = 300 * time.Millisecond, 1500 * time.Millisecond
	f := newMeshProm(t, 10, delay)
	s, err := New(Options{Address: f.URL, CacheTTL: delay / 3})
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(run)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			for time.Now().Before(end) {
				if err := checkInboundOf(t.Context(), s, targetIn("mesh", i), i, time.Now()); err != nil {
					t.Error(err)
					return
				}
				// Each at its own pace, as ticks are: callers keep
				// arriving while an answer is being computed.
				time.Sleep(time.Duration(20+37*i) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	s.refreshing.Wait()
	// Two inbound queries per answer, one answer at a time, a pause as
	// long as an answer takes between two, and one more set when the
	// namespace joins the scope.
	if got, most := len(f.received(0)), 2*(int(run/(2*delay))+3); got > most {
		t.Errorf("%d queries in %v with answers taking %v, want at most %d", got, run, delay, most)
	}
}

// TestLateRefreshServesTheHeldAnswer: a reading of the present whose
// answer is too old to serve outright, while the flight that replaces it
// is late, is served the answer held at once instead of waiting or failing;
// a flight that fails is said, not hidden behind the held answer; and an
// answer older than sharedTimeout is never served.
func TestLateRefreshServesTheHeldAnswer(t *testing.T) {
	series := meshSeries(2)
	var mode atomic.Int32 // 0 answers, 1 holds the answer until released, 2 fails
	release := make(chan struct{})
	f := newFakePromAt(t, func(ctx context.Context, q string, at time.Time) (int, string) {
		switch mode.Load() {
		case 1:
			select {
			case <-release:
			case <-ctx.Done():
			}
			if mode.Load() == 2 {
				return 503, `{"status":"error","errorType":"unavailable","error":"overloaded"}`
			}
		case 2:
			return 503, `{"status":"error","errorType":"unavailable","error":"overloaded"}`
		}
		q, keep, err := extraMatchers(q)
		if err != nil {
			return 400, err.Error()
		}
		for tmpl, samples := range series {
			if q == MeshQuery(tmpl, nil) {
				return 200, vectorBody(slices.DeleteFunc(slices.Clone(samples), func(s sample) bool { return !keep(s) })...)
			}
		}
		return 400, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`
	})
	s, err := New(Options{Address: f.URL, Timeout: 5 * time.Second, CacheTTL: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s.now = clock.Now
	t0 := clock.Now()
	if err := checkInbound(t.Context(), s, 1, t0); err != nil {
		t.Fatal(err)
	}

	// Prometheus is slow: ten seconds on, the reading is served what is
	// held, evaluated at t0, and the tests find nothing new in it.
	mode.Store(1)
	clock.Add(10 * time.Second)
	p, err := s.Inbound(t.Context(), meshTarget(1), clock.Now())
	if err != nil || !p.At.Equal(t0) || p.Canary.Requests != 3 {
		t.Fatalf("reading during a late refresh = %+v, %v; want the answer held, of %v", p, err, t0)
	}

	// That flight fails: the failure is said.
	mode.Store(2)
	close(release)
	eventually(t, func() bool {
		r := s.newest(MeshQuery(InboundRequestsQuery, s.scope(meshTarget(1), clock.Now())))
		return r != nil && r.err != nil
	})
	if _, err := s.Inbound(t.Context(), meshTarget(1), clock.Now()); !errors.Is(err, analysis.ErrUnavailable) {
		t.Errorf("reading after the refresh failed: err %v, want ErrUnavailable", err)
	}

	// Answered again, then slow, and the answer held is older than
	// sharedTimeout: the reading waits, and fails with its own deadline.
	mode.Store(0)
	clock.Add(time.Second)
	if err := checkInbound(t.Context(), s, 1, clock.Now()); err != nil {
		t.Fatal(err)
	}
	mode.Store(1)
	release = make(chan struct{})
	defer close(release)
	clock.Add(sharedTimeout + time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if p, err := s.Inbound(ctx, meshTarget(1), clock.Now()); !errors.Is(err, analysis.ErrUnavailable) {
		t.Errorf("reading with an answer %v old held: %+v, %v; want ErrUnavailable", sharedTimeout+time.Second, p, err)
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 5 s")
}
