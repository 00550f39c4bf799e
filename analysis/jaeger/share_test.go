package jaeger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rangeJaeger is a fake of Jaeger's query API that answers searches as
// Jaeger does: the traces with a span of the service that started in the
// range, the most recent first, at most num_traces. It counts requests and
// the most it had in flight at once.
type rangeJaeger struct {
	t     *testing.T
	clock *fakeClock
	// arrival is how long after its start a span becomes visible, by the
	// clock; zero shows every span at once.
	arrival time.Duration

	mu          sync.Mutex
	services    []string // nil: no service list (404)
	traces      [][]ts
	status      int           // non-zero: every search answers this status
	hold        chan struct{} // non-nil: searches wait for it to close, or for their request to end
	delay       time.Duration // every search takes this long
	searchedAt  []time.Time   // the clock at each search
	inFlight    int
	maxInFlight int
	cancelled   int // searches whose request ended before their answer
	searches    int // searches that reached the server
}

// start runs j on a loopback server closed with the test.
func (j *rangeJaeger) start() *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(j.serve))
	j.t.Cleanup(srv.Close)
	return srv
}

// set changes j's state under its lock.
func (j *rangeJaeger) set(f func(j *rangeJaeger)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(j)
}

func (j *rangeJaeger) serve(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	j.inFlight++
	j.maxInFlight = max(j.maxInFlight, j.inFlight)
	hold, delay, services, status := j.hold, j.delay, j.services, j.status
	if r.URL.Path == "/api/v3/traces" && j.clock != nil {
		j.searchedAt = append(j.searchedAt, j.clock.now())
	}
	j.mu.Unlock()
	defer j.set(func(j *rangeJaeger) { j.inFlight-- })
	switch r.URL.Path {
	case "/api/v3/services":
		if services == nil {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string][]string{"services": services})
	case "/api/v3/traces":
		j.set(func(j *rangeJaeger) { j.searches++ })
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		if r.Context().Err() != nil {
			j.set(func(j *rangeJaeger) { j.cancelled++ })
			return
		}
		if status != 0 {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":{"httpCode":500,"message":"boom"}}`))
			return
		}
		j.answer(w, r)
	default:
		http.NotFound(w, r)
	}
}

// answer writes the traces of the search in r, or Jaeger's "No traces
// found".
func (j *rangeJaeger) answer(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lo, err1 := time.Parse(time.RFC3339Nano, q.Get("query.start_time_min"))
	hi, err2 := time.Parse(time.RFC3339Nano, q.Get("query.start_time_max"))
	var limit int
	_, err3 := fmt.Sscan(q.Get("query.num_traces"), &limit)
	if err := errors.Join(err1, err2, err3); err != nil {
		j.t.Errorf("bad search %v: %v", q, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type hit struct {
		first time.Time
		spans []ts
	}
	var hits []hit
	j.mu.Lock()
	for _, trace := range j.traces {
		var shown []ts
		first := time.Time{}
		for _, sp := range trace {
			at := base.Add(time.Duration(sp.startMs * float64(time.Millisecond)))
			if j.arrival > 0 && at.Add(j.arrival).After(j.clock.now()) {
				continue // not arrived yet
			}
			shown = append(shown, sp)
			if sp.svc == q.Get("query.service_name") && !at.Before(lo) && !at.After(hi) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		if !first.IsZero() {
			hits = append(hits, hit{first, shown})
		}
	}
	j.mu.Unlock()
	if len(hits) == 0 {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(noTracesBody))
		return
	}
	slices.SortFunc(hits, func(a, b hit) int { return b.first.Compare(a.first) })
	var spans []ts
	for _, h := range hits[:min(limit, len(hits))] {
		spans = append(spans, h.spans...)
	}
	_, _ = w.Write([]byte(otlpJSON(j.t, spans...)))
}

// traceIDs lists the traces behind the checkout → payments calls of got.
func traceIDs(got map[analysis.Edge]analysis.EdgePair) []string {
	p := got[analysis.Edge{From: "checkout", To: "payments"}]
	var ids []string
	for _, c := range slices.Concat(p.CanaryCalls, p.StableCalls) {
		ids = append(ids, c.TraceID)
	}
	return ids
}

// TestConcurrentCallersShareOneSearch: 50 rollouts of one service asking at
// once send one search, and each gets the whole answer.
func TestConcurrentCallersShareOneSearch(t *testing.T) {
	j := &rangeJaeger{t: t, services: []string{"checkout"}, hold: make(chan struct{}),
		traces: [][]ts{call3("c1", "v2", 300, false), call3("s1", "v1", 20, false)}}
	src := newSource(t, Options{QueryURL: j.start().URL, Now: (&fakeClock{t: base}).now})
	const n = 50
	errs := make(chan error, n)
	for range n {
		go func() {
			got, err := src.Edges(context.Background(), checkoutV2, since, until)
			if err == nil && len(traceIDs(got)) != 2 {
				err = fmt.Errorf("traces %v, want c1 and s1", traceIDs(got))
			}
			errs <- err
		}()
	}
	eventually(t, "every caller to join the search in flight", func() bool { return src.Shared() == n-1 })
	close(j.hold)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if src.Searches() != 1 || src.ServiceLists() != 1 {
		t.Errorf("%d searches and %d service lists, want 1 and 1", src.Searches(), src.ServiceLists())
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestUnknownServiceIsNotSearched: a service Jaeger does not list is not
// searched and reads as no traces; the list is not fetched again on every
// call, only after a growing backoff, and a newcomer is then searched.
func TestUnknownServiceIsNotSearched(t *testing.T) {
	clock := &fakeClock{t: base}
	j := &rangeJaeger{t: t, clock: clock, services: []string{"frontend"}, traces: [][]ts{call3("c1", "v2", 300, false)}}
	src := newSource(t, Options{QueryURL: j.start().URL, Now: clock.now})
	call := func() error {
		_, err := src.Edges(context.Background(), checkoutV2, since, until)
		return err
	}
	for range 20 {
		if err := call(); !errors.Is(err, analysis.ErrNoData) || !contains(err, "no traces through checkout between") {
			t.Fatalf("Edges of an unknown service: %v, want ErrNoData and no traces", err)
		}
	}
	// The list is fetched again at 1 s, then 2 s after that, then 4 s.
	for _, step := range []struct {
		after time.Duration
		lists int64
	}{{0, 1}, {500 * time.Millisecond, 1}, {500 * time.Millisecond, 2}, {time.Second, 2}, {time.Second, 3}, {3 * time.Second, 3}} {
		clock.add(step.after)
		_ = call()
		if src.ServiceLists() != step.lists {
			t.Errorf("at %v: %d service lists, want %d", clock.now().Sub(base), src.ServiceLists(), step.lists)
		}
	}
	if src.Searches() != 0 || src.Skipped() == 0 {
		t.Errorf("%d searches (%d skipped), want none", src.Searches(), src.Skipped())
	}
	j.set(func(j *rangeJaeger) { j.services = append(j.services, "checkout") })
	clock.add(time.Second) // 4 s since the last list
	if err := call(); err != nil || src.Searches() != 1 || src.ServiceLists() != 4 {
		t.Errorf("once listed: %v, %d searches, %d lists; want edges from 1 search and the 4th list", err, src.Searches(), src.ServiceLists())
	}
}

// TestServiceListIsKept: a list that names the service is fetched again
// only after servicesTTL, however often it is read.
func TestServiceListIsKept(t *testing.T) {
	clock := &fakeClock{t: base}
	j := &rangeJaeger{t: t, services: []string{"checkout"}, traces: [][]ts{call3("c1", "v2", 300, false)}}
	src := newSource(t, Options{QueryURL: j.start().URL, Now: clock.now})
	for range 35 {
		_, _ = src.Edges(context.Background(), checkoutV2, since, until)
		clock.add(time.Second)
	}
	if src.ServiceLists() != 2 {
		t.Errorf("%d service lists in 35 s, want 2", src.ServiceLists())
	}
}

// TestConcurrencyBound: however many rollouts ask at once, at most
// MaxInFlight requests reach Jaeger together, and all are answered.
func TestConcurrencyBound(t *testing.T) {
	const services, limit = 12, 3
	j := &rangeJaeger{t: t, delay: 20 * time.Millisecond}
	for i := range services {
		j.services = append(j.services, fmt.Sprintf("svc%d", i))
	}
	src := newSource(t, Options{QueryURL: j.start().URL, MaxInFlight: limit})
	var wg sync.WaitGroup
	for i := range services {
		target := checkoutV2
		target.Service = fmt.Sprintf("svc%d", i)
		wg.Go(func() {
			if _, err := src.Edges(context.Background(), target, since, until); !errors.Is(err, analysis.ErrNoData) {
				t.Errorf("Edges(%s): %v, want no traces", target.Service, err)
			}
		})
	}
	wg.Wait()
	if j.maxInFlight > limit || j.maxInFlight < 2 || src.Searches() != services {
		t.Errorf("%d searches, at most %d in flight; want %d searches, 2 to %d at once", src.Searches(), j.maxInFlight, services, limit)
	}
}

// TestSlowJaegerHonoursCtx: a caller whose search hangs, and one waiting
// behind it for the only slot, both return at their ctx's deadline; the
// abandoned searches are cancelled and cost the services no backoff.
func TestSlowJaegerHonoursCtx(t *testing.T) {
	j := &rangeJaeger{t: t, hold: make(chan struct{}), services: []string{"checkout", "cart"},
		traces: [][]ts{call3("c1", "v2", 300, false)}}
	src := newSource(t, Options{QueryURL: j.start().URL, MaxInFlight: 1, Timeout: time.Minute})
	cart := checkoutV2
	cart.Service = "cart"
	if _, _, err := src.known(context.Background(), servicesTTL); err != nil { // fetch the service list first
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, target := range []analysis.Target{checkoutV2, cart} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			t0 := time.Now()
			_, err := src.Edges(ctx, target, since, until)
			if !errors.Is(err, analysis.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Edges(%s) on a hung Jaeger: %v, want ErrUnavailable and the deadline", target.Service, err)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Errorf("Edges(%s) returned after %v, want about 100 ms", target.Service, d)
			}
		})
	}
	wg.Wait()
	eventually(t, "the abandoned search to be cancelled", func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		// The second search may get the slot the first freed before its
		// own caller leaves: then it too is sent and cancelled, or it is
		// cancelled before it reaches the server.
		return j.cancelled >= 1 && j.cancelled == j.searches && j.inFlight == 0
	})
	close(j.hold)
	if got, err := src.Edges(context.Background(), checkoutV2, since, until); err != nil || len(traceIDs(got)) != 1 {
		t.Errorf("Edges once Jaeger answers: %v, %v; want c1 at once, not backed off", traceIDs(got), err)
	}
}

// TestBackoffGrowsAndResets: a service whose searches find nothing is
// searched after 1, 2, 4, 8, 16 and then every 30 s; one search that finds
// traces resets that. A failing service backs off the same way, and its
// callers get the last error meanwhile.
func TestBackoffGrowsAndResets(t *testing.T) {
	clock := &fakeClock{t: base}
	j := &rangeJaeger{t: t, clock: clock, services: []string{"checkout"}}
	const tick = 100 * time.Millisecond
	src := newSource(t, Options{QueryURL: j.start().URL, Now: clock.now, CacheTTL: tick})
	call := func() error {
		clock.add(tick)
		now := clock.now()
		_, err := src.Edges(context.Background(), checkoutV2, now.Add(-time.Second), now)
		return err
	}
	gaps := func() []time.Duration {
		j.mu.Lock()
		defer j.mu.Unlock()
		var out []time.Duration
		for i := 1; i < len(j.searchedAt); i++ {
			out = append(out, j.searchedAt[i].Sub(j.searchedAt[i-1]))
		}
		return out
	}
	for src.Searches() < 8 {
		if err := call(); !errors.Is(err, analysis.ErrNoData) {
			t.Fatalf("Edges while nothing is found: %v, want ErrNoData", err)
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if got := gaps(); !slices.Equal(got, want) {
		t.Errorf("gaps between searches %v, want %v", got, want)
	}
	// Traces appear: the next search finds them, and the one after is not
	// held back.
	from := clock.now().Sub(base)
	j.set(func(j *rangeJaeger) { j.traces = everyTick("t", from, from+time.Minute, tick) })
	for n := src.Searches(); src.Searches() < n+2; {
		_ = call()
	}
	if g := gaps(); g[len(g)-1] != tick {
		t.Errorf("after traces were found the next search came %v later, want %v", g[len(g)-1], tick)
	}
	j.set(func(j *rangeJaeger) { j.traces, j.status = nil, http.StatusInternalServerError })
	for n := src.Searches(); src.Searches() < n+2; {
		if err := call(); !errors.Is(err, analysis.ErrUnavailable) || !contains(err, "HTTP 500") {
			t.Fatalf("Edges of a failing Jaeger: %v, want ErrUnavailable and its error", err)
		}
	}
	if g := gaps(); g[len(g)-1] != time.Second {
		t.Errorf("after the first failure the next search came %v later, want 1s", g[len(g)-1])
	}
}

// call3At is call3 starting at ms after base.
func call3At(trace, ver string, at time.Duration) []ts {
	spans := call3(trace, ver, 30, false)
	for i := range spans {
		spans[i].startMs += float64(at) / float64(time.Millisecond)
	}
	return spans
}

// contains reports whether err's message contains s.
func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// everyTick is a trace every step in [from, to) after base, alternately
// canary and stable, named prefix and a number.
func everyTick(prefix string, from, to, step time.Duration) [][]ts {
	var out [][]ts
	for i, at := 0, from; at < to; i, at = i+1, at+step {
		out = append(out, call3At(fmt.Sprintf("%s%d", prefix, i), []string{"v1", "v2"}[i%2], at))
	}
	return out
}

// TestRangesTileUnderSharing: rollouts of one service ticking at random
// times, each asking from its previous until to a lag behind its now as the
// runner does, share searches, and each is given every trace exactly once,
// although spans reach Jaeger late (within the lag). The seed is in the
// subtest's name.
func TestRangesTileUnderSharing(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { tileHistory(t, seed) })
	}
}

// tileHistory runs one seeded history of TestRangesTileUnderSharing.
func tileHistory(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	clock := &fakeClock{t: base}
	j := &rangeJaeger{t: t, clock: clock, arrival: 1500 * time.Millisecond, services: []string{"checkout"}}
	// A trace every 100 ms, moved by up to ±40 ms, so that no step is
	// empty and no search backs off.
	for _, tr := range everyTick("t", 100*time.Millisecond, 40*time.Second, 100*time.Millisecond) {
		jitter := float64(rng.IntN(81) - 40)
		for k := range tr {
			tr[k].startMs += jitter
		}
		j.traces = append(j.traces, tr)
	}
	step := time.Duration(1+rng.IntN(3)) * time.Second
	src := newSource(t, Options{QueryURL: j.start().URL, Now: clock.now, CacheTTL: step})
	const rollouts, lag = 4, 2 * time.Second
	prev := make([]time.Time, rollouts)
	seen := make([]map[string]int, rollouts)
	for r := range rollouts {
		prev[r], seen[r] = base, map[string]int{}
	}
	calls := 0
	tick := func(r int) {
		until := clock.now().Add(-lag)
		if !until.After(prev[r]) {
			return
		}
		got, err := src.Edges(context.Background(), checkoutV2, prev[r], until)
		if err != nil && !errors.Is(err, analysis.ErrNoData) {
			t.Fatalf("seed %d: Edges: %v", seed, err)
		}
		for _, id := range traceIDs(got) {
			seen[r][id]++
		}
		prev[r], calls = until, calls+1
	}
	for clock.now().Before(base.Add(50 * time.Second)) {
		clock.add(time.Duration(rng.Int64N(int64(400 * time.Millisecond))))
		tick(rng.IntN(rollouts))
	}
	for r := range rollouts {
		tick(r)
	}
	for r := range rollouts {
		for i := range j.traces {
			if id := hexID(fmt.Sprintf("t%d", i), 32); seen[r][id] != 1 {
				t.Fatalf("seed %d (step %v): rollout %d was given trace t%d %d times, want once", seed, step, r, i, seen[r][id])
			}
		}
	}
	if src.Searches()*2 > int64(calls) {
		t.Errorf("seed %d: %d searches for %d calls, want them shared", seed, src.Searches(), calls)
	}
}
