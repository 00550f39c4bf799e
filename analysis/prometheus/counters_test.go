package prometheus

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

var inf = math.Inf(+1)

// minus is what a caller gets by diffing two readings of cumulative
// counters: later − earlier, bucket by bucket (a bucket absent from the
// earlier reading counts from zero).
func minus(later, earlier analysis.Stats) analysis.Stats {
	before := map[float64]float64{}
	for _, b := range earlier.Buckets {
		before[b.UpperMs] = b.Count
	}
	d := analysis.Stats{Requests: later.Requests - earlier.Requests, Errors: later.Errors - earlier.Errors}
	for _, b := range later.Buckets {
		d.Buckets = append(d.Buckets, analysis.Bucket{UpperMs: b.UpperMs, Count: b.Count - before[b.UpperMs]})
	}
	return d
}

// assertDiff compares the requests, errors and buckets of a difference.
func assertDiff(t *testing.T, what string, got, want analysis.Stats) {
	t.Helper()
	if got.Requests != want.Requests || got.Errors != want.Errors || !slices.Equal(got.Buckets, want.Buckets) {
		t.Errorf("%s: difference = %+v, want %+v", what, got, want)
	}
}

// TestNewSeriesCountsFromZero reads the counters twice while checkout v2
// fails for the first time, which creates its response_code="500" series
// (and the calling side's "503" one, and a first call to fraud) at 1, as
// Envoy does: the differences of the two readings count those series from
// zero.
func TestNewSeriesCountsFromZero(t *testing.T) {
	t1 := time.Unix(1_700_000_000, 0)
	t2 := t1.Add(10 * time.Second)
	before := map[string][]sample{
		InboundRequestsQuery: {in(10, "v2", "200"), in(20, "v1", "200")},
		InboundLatencyQuery:  {inLE(4, "v2", "100"), inLE(10, "v2", "+Inf"), inLE(20, "v1", "100"), inLE(20, "v1", "+Inf")},
		HopRequestsQuery: {hop(5, "checkout-v2", "checkout", "v2", "payments", "200"),
			hop(3, "checkout-v1", "checkout", "v1", "payments", "200")},
		HopLatencyQuery: nil,
	}
	after := map[string][]sample{
		// Two more OK requests to v2, its first 500, and five to v1.
		InboundRequestsQuery: {in(12, "v2", "200"), in(1, "v2", "500"), in(25, "v1", "200")},
		// The OK requests took at most 100 ms; the 500, whose histogram
		// series is new too, took longer.
		InboundLatencyQuery: {inLE(6, "v2", "100"), inLE(13, "v2", "+Inf"), inLE(25, "v1", "100"), inLE(25, "v1", "+Inf")},
		HopRequestsQuery: {hop(6, "checkout-v2", "checkout", "v2", "payments", "200"),
			hop(1, "checkout-v2", "checkout", "v2", "payments", "503"),
			hop(3, "checkout-v1", "checkout", "v1", "payments", "200"),
			hop(1, "checkout-v1", "checkout", "v1", "fraud", "500")},
		HopLatencyQuery: nil,
	}
	f := newSeriesPromAt(t, func(at time.Time) map[string][]sample {
		if at.Before(t2) {
			return before
		}
		return after
	}, 0)
	s := newSource(t, f.URL, time.Second)
	clock := &fakeClock{now: t1}
	s.now = clock.Now

	in1, err := s.Inbound(t.Context(), subsetTarget, t1)
	if err != nil {
		t.Fatal(err)
	}
	hops1, err := s.Hops(t.Context(), subsetTarget, t1)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(t2.Sub(t1))
	in2, err := s.Inbound(t.Context(), subsetTarget, t2)
	if err != nil {
		t.Fatal(err)
	}
	hops2, err := s.Hops(t.Context(), subsetTarget, t2)
	if err != nil {
		t.Fatal(err)
	}

	// The readings are the counters themselves, and P99Ms that of all
	// their requests: in the +Inf bucket, so the highest finite bound.
	assertStats(t, "canary at t1", in1.Canary, analysis.Stats{Requests: 10, Errors: 0, P99Ms: 100})
	assertStats(t, "canary at t2", in2.Canary, analysis.Stats{Requests: 13, Errors: 1, P99Ms: 100})
	assertDiff(t, "canary", minus(in2.Canary, in1.Canary),
		analysis.Stats{Requests: 3, Errors: 1, Buckets: []analysis.Bucket{{UpperMs: 100, Count: 2}, {UpperMs: inf, Count: 3}}})
	assertDiff(t, "stable", minus(in2.Stable, in1.Stable),
		analysis.Stats{Requests: 5, Errors: 0, Buckets: []analysis.Bucket{{UpperMs: 100, Count: 5}, {UpperMs: inf, Count: 5}}})

	if _, ok := hops1["fraud"]; ok || len(hops1) != 1 {
		t.Errorf("hops at t1 = %v, want payments only", hops1)
	}
	assertDiff(t, "canary → payments", minus(hops2["payments"].Canary, hops1["payments"].Canary), analysis.Stats{Requests: 2, Errors: 1})
	assertDiff(t, "stable → payments", minus(hops2["payments"].Stable, hops1["payments"].Stable), analysis.Stats{})
	assertDiff(t, "stable → fraud", minus(hops2["fraud"].Stable, hops1["fraud"].Stable), analysis.Stats{Requests: 1, Errors: 1})
}

// growingSeries is a mesh whose counters grow by one request a second
// since origin on checkout v2 (half of them within 100 ms), two on v1,
// and one call a second from v2 to payments: the value at a time tells
// which time a query was evaluated at.
func growingSeries(origin time.Time) func(at time.Time) map[string][]sample {
	return func(at time.Time) map[string][]sample {
		n := at.Sub(origin).Seconds()
		return map[string][]sample{
			InboundRequestsQuery: {in(n, "v2", "200"), in(2*n, "v1", "200")},
			InboundLatencyQuery:  {inLE(n/2, "v2", "100"), inLE(n, "v2", "+Inf")},
			HopRequestsQuery:     {hop(n, "checkout-v2", "checkout", "v2", "payments", "200")},
			HopLatencyQuery:      nil,
		}
	}
}

// assertReading checks that a reading holds the counters of growingSeries
// at at.
func assertReading(t *testing.T, what string, got analysis.Pair, origin, at time.Time) {
	t.Helper()
	n := at.Sub(origin).Seconds()
	assertStats(t, what+" canary", got.Canary, analysis.Stats{Requests: n, P99Ms: 100})
	if got.Stable.Requests != 2*n {
		t.Errorf("%s stable = %+v, want %v requests", what, got.Stable, 2*n)
	}
}

// assertTimes checks that the queries were sent for the times given, as
// many for each.
func assertTimes(t *testing.T, what string, got []promQuery, want map[time.Time]int) {
	t.Helper()
	// By Unix milliseconds: client_golang sends float seconds.
	gotMs, wantMs := map[int64]int{}, map[int64]int{}
	for _, q := range got {
		gotMs[q.at.Round(time.Millisecond).UnixMilli()]++
	}
	for at, n := range want {
		wantMs[at.UnixMilli()] = n
	}
	if !maps.Equal(gotMs, wantMs) {
		t.Errorf("%s: queries by evaluation time (Unix ms) = %v, want %v", what, gotMs, wantMs)
	}
}

// TestReadingOfThePast reads the counters at a rollout's analysis start,
// an hour ago, as a tracker does after a controller restart: the queries
// are sent for that time and answered with the counters of then, not from
// the cached reading of now, which they do not evict either.
func TestReadingOfThePast(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	origin, start := now.Add(-2*time.Hour), now.Add(-time.Hour)
	f := newSeriesPromAt(t, growingSeries(origin), 0)
	s, clock := newClockedSource(t, f.URL, time.Second, now)

	p, err := s.Inbound(t.Context(), subsetTarget, now)
	if err != nil {
		t.Fatal(err)
	}
	assertReading(t, "now", p, origin, now)
	assertTimes(t, "now", f.receivedAt(0), map[time.Time]int{now: 2})

	p, err = s.Inbound(t.Context(), subsetTarget, start)
	if err != nil {
		t.Fatal(err)
	}
	assertReading(t, "at the start", p, origin, start)
	hops, err := s.Hops(t.Context(), subsetTarget, start)
	if err != nil {
		t.Fatal(err)
	}
	if got := hops["payments"].Canary.Requests; got != start.Sub(origin).Seconds() {
		t.Errorf("canary → payments at the start = %v requests, want %v", got, start.Sub(origin).Seconds())
	}
	assertTimes(t, "at the start", f.receivedAt(2), map[time.Time]int{start: 4})
	// A reading of the past is the rollout's own: its queries select its
	// service's series only, not the whole mesh of the shared queries.
	for _, q := range f.receivedAt(2) {
		if !strings.Contains(q.text, `destination_service="`+checkoutFQDN+`"`) && !strings.Contains(q.text, `source_canonical_service="checkout"`) {
			t.Errorf("a reading of the past selects more than its service: %s", q.text)
		}
	}

	// Within the TTL, now is still served from the cache.
	clock.Add(500 * time.Millisecond)
	p, err = s.Inbound(t.Context(), subsetTarget, now.Add(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	assertReading(t, "now, cached", p, origin, now)
	assertTimes(t, "now, cached", f.receivedAt(6), map[time.Time]int{})
}

// TestReadingsOfThePastInFlight reads the present and two past instants at
// once, while the shared query for one of them is in flight: each caller
// gets the counters of its own time, and the callers of one time share
// one query.
func TestReadingsOfThePastInFlight(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	origin, startA, startB := now.Add(-2*time.Hour), now.Add(-time.Hour), now.Add(-90*time.Minute)
	release := make(chan struct{})
	series := growingSeries(origin)
	f := newSeriesPromAt(t, func(at time.Time) map[string][]sample {
		if at.Equal(startA) {
			<-release
		}
		return series(at)
	}, 0)
	s, _ := newClockedSource(t, f.URL, 5*time.Second, now)

	var wg sync.WaitGroup
	read := func(at time.Time) {
		wg.Go(func() {
			p, err := s.Inbound(t.Context(), subsetTarget, at)
			if err != nil {
				t.Error(err)
				return
			}
			assertReading(t, fmt.Sprint("at ", at.Sub(now)), p, origin, at)
		})
	}
	read(startA)
	for len(f.receivedAt(0)) < 2 { // the flights for startA are under way
		time.Sleep(time.Millisecond)
	}
	for range 10 {
		read(now)
	}
	read(startB)
	time.Sleep(100 * time.Millisecond) // they join the flights for startA
	close(release)
	wg.Wait()
	assertTimes(t, "three times", f.receivedAt(0), map[time.Time]int{startA: 2, startB: 2, now: 2})
}

// TestScopeAfterRestart runs a controller's first ticks after a restart:
// every rollout first reads its analysis start, then the present. The
// readings of the past do not make their namespaces join the scope at
// once, so the present readings of a tick all share the same queries.
func TestScopeAfterRestart(t *testing.T) {
	s, f, clock := newScopeTest(t, "a", "b", "c")
	rollouts := []rollout{{targetIn("a", 0), 0}, pinned("b", 1), {targetIn("c", 0), 0}}
	tick := func() []promQuery {
		before := len(f.receivedAt(0))
		now := clock.Now()
		var wg sync.WaitGroup
		for k, r := range rollouts {
			start := now.Add(-time.Hour - time.Duration(k)*time.Minute)
			wg.Go(func() {
				for _, at := range []time.Time{start, now} {
					if err := checkInboundOf(t.Context(), s, r.target, r.i, at); err != nil {
						t.Error(err)
					}
					if err := checkHopsOf(t.Context(), s, r.target, r.i, at); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		var present []promQuery
		for _, q := range f.receivedAt(before) {
			if q.at.Round(time.Millisecond).Equal(now) {
				present = append(present, q)
			}
		}
		return present
	}
	texts := func(qs []promQuery) []string {
		out := make([]string, len(qs))
		for i, q := range qs {
			out[i] = q.text
		}
		return out
	}
	assertScopes(t, "first tick after the restart", texts(tick()), map[string]int{"": 4})
	clock.Add(time.Second)
	assertScopes(t, "second tick", texts(tick()), map[string]int{"a|b|c": 4})
}

// TestBaselinesShareTheAnswerOfThePresent starts 100 rollouts at once:
// each reads its baseline, a recent past instant, and gets it from one
// shared answer evaluated at least a TTL after that instant, not from
// queries of its own; an older instant is still read exactly.
func TestBaselinesShareTheAnswerOfThePresent(t *testing.T) {
	const n = 100
	now := time.Unix(1_700_000_000, 0)
	f := newMeshProm(t, n, 20*time.Millisecond)
	s, _ := newClockedSource(t, f.URL, time.Second, now)
	baseline := now.Add(-1500 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tg := targetIn("mesh", i)
			p, err := s.Inbound(t.Context(), tg, baseline)
			if err != nil {
				t.Error(err)
				return
			}
			if p.At.Before(baseline.Add(s.ttl)) {
				t.Errorf("svc-%d: baseline at %v read at %v, less than a TTL after it", i, baseline, p.At)
			}
			if want := float64(i + 2); p.Canary.Requests != want {
				t.Errorf("svc-%d: canary requests %v, want %v", i, p.Canary.Requests, want)
			}
			if _, err := s.Hops(t.Context(), tg, baseline); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	assertTimes(t, "baselines", f.receivedAt(0), map[time.Time]int{now: 4})

	older := now.Add(-s.recentPast - time.Second)
	p, err := s.Inbound(t.Context(), targetIn("mesh", 3), older)
	if err != nil {
		t.Fatal(err)
	}
	if !p.At.Equal(older) {
		t.Errorf("an older instant read at %v, want %v", p.At, older)
	}
	assertTimes(t, "an older instant", f.receivedAt(4), map[time.Time]int{older: 2})
}

// TestReadingsOfThePastAreBounded reads 20 rollouts' starts after a
// restart at once: no more than maxPastQueries reach Prometheus together,
// and every reading still gets its own instant's counters.
func TestReadingsOfThePastAreBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	origin := now.Add(-2 * time.Hour)
	series := growingSeries(origin)
	var mu sync.Mutex
	inFlight, most := 0, 0
	f := newSeriesPromAt(t, func(at time.Time) map[string][]sample {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return series(at)
	}, 0)
	s, _ := newClockedSource(t, f.URL, 5*time.Second, now)
	var wg sync.WaitGroup
	for i := range 20 {
		at := now.Add(-time.Hour - time.Duration(i)*time.Minute)
		wg.Go(func() {
			p, err := s.Inbound(t.Context(), subsetTarget, at)
			if err != nil {
				t.Error(err)
				return
			}
			assertReading(t, fmt.Sprint("start ", i), p, origin, at)
		})
	}
	wg.Wait()
	if most > maxPastQueries {
		t.Errorf("%d readings of the past at once, want at most %d", most, maxPastQueries)
	}
	if got := len(f.receivedAt(0)); got != 40 {
		t.Errorf("%d queries, want 40 (2 per reading)", got)
	}
}

// newClockedSource is newSource on a fake clock set at now.
func newClockedSource(t *testing.T, addr string, timeout time.Duration, now time.Time) (*Source, *fakeClock) {
	t.Helper()
	s := newSource(t, addr, timeout)
	clock := &fakeClock{now: now}
	s.now = clock.Now
	return s, clock
}
