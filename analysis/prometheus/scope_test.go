package prometheus

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// rollout is a target whose series are those of svc-i in addSeries.
type rollout struct {
	target analysis.Target
	i      int
}

// pinned is svc-i in ns recognised by workload, with Match naming the
// namespace, so that Hops also reads the shared inbound query.
func pinned(ns string, i int) rollout {
	t := targetIn(ns, i)
	t.Canary.Match = map[string]string{"destination_workload_namespace": ns, "destination_workload": t.Service + "-v2"}
	t.Stable.Match = map[string]string{"destination_workload_namespace": ns, "destination_workload": t.Service + "-v1"}
	return rollout{t, i}
}

// runTick runs Inbound and Hops for every rollout at once at the clock's
// time, checks that each gets its own numbers, and returns the queries
// the tick sent.
func runTick(t *testing.T, s *Source, f *fakeProm, clock *fakeClock, rollouts ...rollout) []string {
	t.Helper()
	before := len(f.received(0))
	at := clock.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(rollouts))
	for _, r := range rollouts {
		wg.Go(func() { errs <- checkInboundOf(t.Context(), s, r.target, r.i, at) })
		wg.Go(func() { errs <- checkHopsOf(t.Context(), s, r.target, r.i, at) })
	}
	wg.Wait()
	s.refreshing.Wait() // the tick's background refreshes count as its queries
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	return f.received(before)
}

// scopesOf counts queries by the namespaces they select, "a|b", or "" for
// the whole mesh, and checks that each matches on the namespace of its
// reporter.
func scopesOf(t *testing.T, queries []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, q := range queries {
		m := nsMatcher.FindStringSubmatch(q)
		if m == nil {
			out[""]++
			continue
		}
		label := "destination_workload_namespace"
		if strings.Contains(q, `reporter="source"`) {
			label = "source_workload_namespace"
		}
		if m[1] != label {
			t.Errorf("query %s matches on %s, want %s", q, m[1], label)
		}
		ns, err := strconv.Unquote(m[2])
		if err != nil {
			t.Errorf("query %s: namespace matcher %s: %v", q, m[2], err)
		}
		out[ns]++
	}
	return out
}

func assertScopes(t *testing.T, when string, queries []string, want map[string]int) {
	t.Helper()
	if got := scopesOf(t, queries); !maps.Equal(got, want) {
		t.Errorf("%s: queries by scope = %v, want %v (\"\" is the whole mesh)", when, got, want)
	}
}

// newScopeTest serves svc-0 and svc-1 in each of namespaces.
func newScopeTest(t *testing.T, namespaces ...string) (*Source, *fakeProm, *fakeClock) {
	series := map[string][]sample{}
	for _, ns := range namespaces {
		addSeries(series, ns, 2)
	}
	f := newSeriesProm(t, series, 0)
	s := newSource(t, f.URL, time.Second)
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s.now = clock.Now
	return s, f, clock
}

// TestScopedQueries checks that the shared queries select the namespaces
// of the rollouts under analysis, as many per tick as without scoping, and
// that a new namespace costs one extra set of queries in its first tick.
func TestScopedQueries(t *testing.T) {
	s, f, clock := newScopeTest(t, "a", "b", "c")
	a, b, c := rollout{targetIn("a", 0), 0}, pinned("b", 1), rollout{targetIn("c", 0), 0}

	// Warm-up: a and b are new, so they are served mesh-wide.
	assertScopes(t, "first tick", runTick(t, s, f, clock, a, b), map[string]int{"": 4})

	clock.Add(time.Second)
	q := runTick(t, s, f, clock, a, b)
	assertScopes(t, "a and b", q, map[string]int{"a|b": 4})
	for _, want := range []string{`destination_workload_namespace=~"a|b"`, `source_workload_namespace=~"a|b"`} {
		if !slices.ContainsFunc(q, func(q string) bool { return strings.Contains(q, want) }) {
			t.Errorf("no query contains %s: %q", want, q)
		}
	}

	// c appears: a and b keep their scope while c is served mesh-wide.
	clock.Add(time.Second)
	assertScopes(t, "c appears", runTick(t, s, f, clock, a, b, c), map[string]int{"a|b": 4, "": 4})
	clock.Add(time.Second)
	assertScopes(t, "a, b and c", runTick(t, s, f, clock, a, b, c), map[string]int{"a|b|c": 4})
	// Within the TTL: all from the cache.
	clock.Add(500 * time.Millisecond)
	assertScopes(t, "within the TTL", runTick(t, s, f, clock, c, b, a), map[string]int{})
}

// TestScopeForgetsNamespaces checks that a namespace not asked about for
// ForgetNamespaceAfter drops out of the queries, and comes back when asked
// about again.
func TestScopeForgetsNamespaces(t *testing.T) {
	s, f, clock := newScopeTest(t, "a", "b")
	a, b := rollout{targetIn("a", 0), 0}, rollout{targetIn("b", 1), 1}
	runTick(t, s, f, clock, a, b)
	clock.Add(time.Second)
	assertScopes(t, "a and b", runTick(t, s, f, clock, a, b), map[string]int{"a|b": 4})

	// Only a is analysed from now on.
	for elapsed := time.Minute; elapsed <= ForgetNamespaceAfter; elapsed += time.Minute {
		clock.Add(time.Minute)
		assertScopes(t, fmt.Sprintf("b not asked about for %v", elapsed), runTick(t, s, f, clock, a), map[string]int{"a|b": 4})
	}
	clock.Add(time.Second)
	assertScopes(t, "b forgotten", runTick(t, s, f, clock, a), map[string]int{"a": 4})

	clock.Add(time.Second)
	assertScopes(t, "b again", runTick(t, s, f, clock, a, b), map[string]int{"a": 4, "": 4})
	clock.Add(time.Second)
	assertScopes(t, "b back", runTick(t, s, f, clock, a, b), map[string]int{"a|b": 4})
}

// TestUnscopedTargets checks that a target whose namespace cannot be told
// gets the mesh-wide queries, and so does everyone once it has joined,
// until it is forgotten.
func TestUnscopedTargets(t *testing.T) {
	noNamespace := targetIn("mesh", 0)
	noNamespace.Namespace = ""
	for name, u := range map[string]rollout{
		"no namespace":              {noNamespace, 0},
		"Match without a namespace": {meshTarget(1), 1},
	} {
		t.Run(name, func(t *testing.T) {
			s, f, clock := newScopeTest(t, "mesh")
			scoped := rollout{targetIn("mesh", 0), 0}
			runTick(t, s, f, clock, scoped)
			clock.Add(time.Second)
			assertScopes(t, "scoped alone", runTick(t, s, f, clock, scoped), map[string]int{"mesh": 4})
			clock.Add(time.Second)
			q := runTick(t, s, f, clock, scoped, u)
			assertScopes(t, "unscoped appears", q, map[string]int{"mesh": 4, "": 4})
			if !slices.Contains(q, MeshQuery(InboundRequestsQuery, nil)) {
				t.Errorf("no query without a namespace matcher: %q", q)
			}
			clock.Add(time.Second)
			assertScopes(t, "unscoped joined", runTick(t, s, f, clock, scoped, u), map[string]int{"": 4})

			for range ForgetNamespaceAfter / time.Minute {
				clock.Add(time.Minute)
				runTick(t, s, f, clock, scoped)
			}
			clock.Add(time.Second)
			assertScopes(t, "unscoped forgotten", runTick(t, s, f, clock, scoped), map[string]int{"mesh": 4})
		})
	}
}

// TestBatchingManyNamespaces runs 100 rollouts in 100 namespaces at once,
// tick by tick, on a fresh Source: no tick sends more than the four
// shared queries, and from the second tick on they select those
// namespaces.
func TestBatchingManyNamespaces(t *testing.T) {
	const n = 100
	series := map[string][]sample{}
	rollouts := make([]rollout, n)
	names := make([]string, n)
	for k := range n {
		names[k] = fmt.Sprintf("ns-%03d", k)
		addSeries(series, names[k], 1)
		rollouts[k] = rollout{targetIn(names[k], 0), 0}
	}
	f := newSeriesProm(t, series, 20*time.Millisecond)
	s := newSource(t, f.URL, time.Second)
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s.now = clock.Now

	assertScopes(t, "tick 1", runTick(t, s, f, clock, rollouts...), map[string]int{"": 4})
	for tick := 2; tick <= 3; tick++ {
		clock.Add(time.Second)
		assertScopes(t, fmt.Sprintf("tick %d", tick), runTick(t, s, f, clock, rollouts...),
			map[string]int{strings.Join(names, "|"): 4})
	}
}

func TestMeshQuery(t *testing.T) {
	const requests, buckets = "(istio_requests_total", "(istio_request_duration_milliseconds_bucket"
	tests := []struct {
		template   string
		namespaces []string
		tail       string // the raw counters summed
	}{
		{InboundRequestsQuery, nil, requests + `{reporter="destination"})`},
		{InboundRequestsQuery, []string{}, requests + `{reporter="destination"})`},
		{InboundLatencyQuery, []string{"b", "a", "b"}, buckets + `{reporter="destination", destination_workload_namespace=~"a|b"})`},
		{HopRequestsQuery, []string{"shop"}, requests + `{reporter="source", source_workload_namespace=~"shop"})`},
		{HopLatencyQuery, []string{"b", "a"}, buckets + `{reporter="source", source_workload_namespace=~"a|b"})`},
		// Regexp-quoted, then escaped for the PromQL string.
		{InboundRequestsQuery, []string{"a.b", `c"d`}, requests + `{reporter="destination", destination_workload_namespace=~"a\\.b|c\"d"})`},
	}
	for _, tt := range tests {
		if got := MeshQuery(tt.template, tt.namespaces); !strings.Contains(got, tt.tail) || !strings.HasPrefix(got, "sum by (") {
			t.Errorf("MeshQuery(%.40q..., %q) = %s, want sum by (...) %s", tt.template, tt.namespaces, got, tt.tail)
		}
	}
}

func TestTargetNamespaces(t *testing.T) {
	pin := func(ns string) map[string]string {
		return map[string]string{"destination_workload_namespace": ns, "destination_workload": "w"}
	}
	tests := []struct {
		name   string
		target analysis.Target
		want   []string
	}{
		{"namespace", subsetTarget, []string{"shop"}},
		{"host mode", hostTarget, []string{"shop"}},
		{"no namespace", withNamespace(subsetTarget, ""), []string{unscoped}},
		{"Match without a namespace", withMatch(subsetTarget, map[string]string{"destination_workload": "w"}, pin("shop")), []string{"shop", unscoped}},
		{"Match in the namespace", withMatch(subsetTarget, pin("shop"), pin("shop")), []string{"shop"}},
		{"Match in another namespace", withMatch(subsetTarget, pin("shop"), pin("legacy")), []string{"shop", "legacy"}},
	}
	for _, tt := range tests {
		if got := targetNamespaces(tt.target); !slices.Equal(got, tt.want) {
			t.Errorf("%s: targetNamespaces = %q, want %q", tt.name, got, tt.want)
		}
	}
}
