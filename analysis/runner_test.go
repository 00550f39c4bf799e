package analysis

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeMetrics serves cumulative counters that grow with time: rps requests
// a second to each side since t0; it records the instants asked for. It is
// a fake of pure data, for the runner's bookkeeping. The real sources are
// tested against real servers.
type fakeMetrics struct {
	t0      time.Time
	canary  float64 // requests a second
	stable  float64
	errRate float64 // of the canary
	err     error
	asked   *[]time.Time
}

func (f fakeMetrics) Inbound(_ context.Context, _ Target, at time.Time) (Pair, error) {
	if f.asked != nil {
		*f.asked = append(*f.asked, at)
	}
	secs := at.Sub(f.t0).Seconds()
	return Pair{Canary: side(f.canary*secs, f.errRate*f.canary*secs, 20), Stable: side(f.stable*secs, 0, 20)}, f.err
}
func (f fakeMetrics) Hops(context.Context, Target, time.Time) (map[string]Pair, error) {
	return map[string]Pair{}, f.err
}
func (f fakeMetrics) Scalar(context.Context, string, time.Time) (float64, error) { return 0, ErrNoData }

// fakeTraces returns n canary and n stable calls of ms milliseconds per
// search and records the ranges asked for.
type fakeTraces struct {
	n      int
	ms     float64
	ranges [][2]time.Time
}

func (f *fakeTraces) Edges(_ context.Context, _ Target, since, until time.Time) (map[Edge]EdgePair, error) {
	f.ranges = append(f.ranges, [2]time.Time{since, until})
	var c, s []Call
	for i := 0; i < f.n; i++ {
		c = append(c, Call{Ms: f.ms, TraceID: fmt.Sprint("t", i)})
		s = append(s, Call{Ms: 10})
	}
	return map[Edge]EdgePair{{From: "checkout", To: "payments"}: {CanaryCalls: c, StableCalls: s, CanaryTraceID: "t0"}}, nil
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestRunnerTraceSearches(t *testing.T) {
	tr := &fakeTraces{n: 8, ms: 900}
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90}, Traces: tr, ScrapeInterval: time.Second})
	cfg := DefaultConfig()
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Target: Target{Service: "checkout"}, Start: t0}
	var res Result
	for i := 1; i <= 10; i++ {
		req.Now = t0.Add(time.Duration(i) * 2 * time.Second)
		var err error
		if res, err = r.Analyze(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// The searches never reach before the start, lag behind now, and each
	// starts where the last ended.
	if len(tr.ranges) < 2 || !tr.ranges[0][0].Equal(t0) || !tr.ranges[1][0].Equal(tr.ranges[0][1]) ||
		!tr.ranges[0][1].Equal(t0.Add(2*time.Second-traceLag)) && !tr.ranges[0][1].Equal(t0.Add(4*time.Second-traceLag)) {
		t.Errorf("search ranges %v: want them to start at the analysis start, end %v before now, and follow on", tr.ranges, traceLag)
	}
	var found bool
	for _, c := range res.Checks {
		if c.Source == "jaeger" && c.Kind == KindLatency && c.Hop == "checkout → payments" {
			found = true
			if c.Verdict != Fail || c.CanaryRequests != float64(8*len(tr.ranges)) || c.TraceID != "t0" {
				t.Errorf("trace latency check %+v: want Fail over every search's calls (%d searches), with the example trace", c, len(tr.ranges))
			}
		}
	}
	if !found || res.Verdict != Fail {
		t.Fatalf("verdict %s (%s): want the trace check to fail", res.Verdict, res.Reason)
	}
}

// After a restart the runner rebuilds the tests from the counters as they
// stood at the analysis start, so nothing from before it counts and
// nothing since is lost.
func TestRunnerBaselineAtTheAnalysisStart(t *testing.T) {
	var asked []time.Time
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90, asked: &asked}, ScrapeInterval: time.Second})
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Start: t0, Now: t0.Add(90 * time.Second), Shown: true}
	res, err := r.Analyze(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The baseline is the first scrape after the start.
	if len(asked) != 2 || !asked[0].Equal(t0.Add(time.Second)) || !asked[1].Equal(req.Now) {
		t.Fatalf("asked for counters at %v, want a scrape after the start, then now", asked)
	}
	if c := check(t, res, KindErrorRate); c.CanaryRequests != 890 || c.StableRequests != 8010 || res.Verdict != Pass || !c.Since.Equal(t0) {
		t.Errorf("check %+v, verdict %s: want the 89 s since the first scrape after the start counted, since the start, and a pass", c, res.Verdict)
	}
	// A new start (a new rollout of the same name) starts a new test.
	req.Start, req.Now = t0.Add(20*time.Second), t0.Add(20*time.Second)
	res, _ = r.Analyze(context.Background(), req)
	if c := check(t, res, KindErrorRate); c.CanaryRequests != 0 || !res.NoData {
		t.Errorf("after a new start: check %+v noData %v, want nothing counted yet", c, res.NoData)
	}
}

// A rollout whose first tick comes long after its start, with nothing of
// its analysis shown yet (a thousand rollouts queued for their first
// step), begins its tests lateBaseline before that tick: a reading the
// shared answers serve, not a query of its own for the start. One that
// comes within lateBaseline of the first scrape reads that scrape.
func TestRunnerLateFirstTickBeginsLater(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	for _, tc := range []struct {
		late      time.Duration // first tick after the start
		wantFirst time.Time     // the baseline asked for
		requests  float64       // the canary's requests counted
	}{
		{late: 90 * time.Second, wantFirst: t0.Add(80 * time.Second), requests: 100},
		// Whole seconds, as the API server stores the checks' since.
		{late: 90*time.Second + 500*time.Millisecond, wantFirst: t0.Add(80 * time.Second), requests: 105},
		{late: 11 * time.Second, wantFirst: t0.Add(time.Second), requests: 100},
		{late: 5 * time.Second, wantFirst: t0.Add(time.Second), requests: 40},
	} {
		var asked []time.Time
		r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90, asked: &asked}, ScrapeInterval: time.Second})
		req := Request{Namespace: "shop", Name: "ro", Config: cfg, Start: t0, Now: t0.Add(tc.late)}
		res, err := r.Analyze(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(asked) != 2 || !asked[0].Equal(tc.wantFirst) || !asked[1].Equal(req.Now) {
			t.Errorf("first tick %v after the start: asked for counters at %v, want %v then now", tc.late, asked, tc.wantFirst)
		}
		wantSince := t0 // the start, or the later baseline
		if tc.wantFirst.After(t0.Add(time.Second)) {
			wantSince = tc.wantFirst
		}
		if c := check(t, res, KindErrorRate); c.CanaryRequests != tc.requests || !c.Since.Equal(wantSince) {
			t.Errorf("first tick %v after the start: check %+v, want %v canary requests counted since %v", tc.late, c, tc.requests, wantSince)
		}
		// The next tick goes on from the same baseline.
		req.Now = req.Now.Add(2 * time.Second)
		asked = nil
		res, _ = r.Analyze(context.Background(), req)
		if c := check(t, res, KindErrorRate); len(asked) != 1 || c.CanaryRequests != tc.requests+20 {
			t.Errorf("next tick: asked %v, check %+v, want now only and 20 more requests", asked, c)
		}
	}
}

// Every built-in check names its window, the analysis start; a custom
// check, whose query has its own range, names none.
func TestRunnerNamesEachCheckWindow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hops = false
	cfg.Custom = []CustomCheck{{Name: "orders-ok", Query: "vector(1)", Op: ">", Threshold: 0}}
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90},
		Traces: &fakeTraces{n: 30, ms: 10}, ScrapeInterval: time.Second})
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Start: t0, Now: t0.Add(10 * time.Second)}
	res, err := r.Analyze(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]bool{}
	for _, c := range res.Checks {
		want := t0
		if c.Kind == KindCustom {
			want = time.Time{}
		}
		if !c.Since.Equal(want) {
			t.Errorf("%s %s (%s): since %v, want %v", c.Check, c.Hop, c.Source, c.Since, want)
		}
		sources[c.Source+" "+string(c.Kind)] = true
	}
	if !sources["prometheus error-rate"] || !sources["jaeger error-rate"] || !sources["prometheus custom"] {
		t.Errorf("checks %v, want metrics, traces and the custom check judged", sources)
	}
}

// A regression is caught on the tick after it is in the counters.
func TestRunnerFailsABadCanary(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0, canary: 20, stable: 180, errRate: 0.5}, ScrapeInterval: time.Second})
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Start: t0, Now: t0.Add(2 * time.Second)}
	res, _ := r.Analyze(context.Background(), req)
	if res.Verdict != Fail || !strings.Contains(res.Reason, "error rate canary 50%") {
		t.Fatalf("verdict %s (%s): want the 50%% error canary failed", res.Verdict, res.Reason)
	}
}

func TestRunnerWithoutMetricsIsNeverAPass(t *testing.T) {
	r := NewRunner(RunnerOptions{})
	res, err := r.Analyze(context.Background(), Request{Config: DefaultConfig(), Now: time.Now()})
	if err != nil || res.Verdict != Inconclusive {
		t.Fatalf("Analyze without sources = %s, %v; want Inconclusive", res.Verdict, err)
	}
}

func TestRunnerUnavailableSourceIsInconclusive(t *testing.T) {
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{err: fmt.Errorf("dial: connection refused: %w", ErrUnavailable)}, ScrapeInterval: time.Second})
	req := Request{Config: DefaultConfig(), Start: t0, Now: t0.Add(3 * time.Second)}
	res, _ := r.Analyze(context.Background(), req)
	if res.Verdict != Inconclusive || !res.NoData || !strings.Contains(res.Reason, "data source unavailable") {
		t.Fatalf("verdict %s reason %q: want Inconclusive saying the source is unavailable", res.Verdict, res.Reason)
	}
}

func TestRunnerRefusesABadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Custom = []CustomCheck{{Name: "x", Query: "up", Op: "=="}}
	if _, err := NewRunner(RunnerOptions{}).Analyze(context.Background(), Request{Config: cfg}); err == nil {
		t.Fatal("a custom check with op == was accepted")
	}
}

// A start with sub-second precision and the same start in whole seconds,
// as the API server stores it, are one analysis.
func TestRunnerStartInWholeSeconds(t *testing.T) {
	var asked []time.Time
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90, asked: &asked}, ScrapeInterval: time.Second})
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Now: t0.Add(1500 * time.Millisecond)}
	_, _ = r.Analyze(context.Background(), req) // starts at t0+1s, in whole seconds: too early for a baseline
	req.Start, req.Now = t0.Add(time.Second), t0.Add(3*time.Second)
	_, _ = r.Analyze(context.Background(), req) // the baseline (t0+2s) and a reading
	req.Now = t0.Add(5 * time.Second)
	res, _ := r.Analyze(context.Background(), req)
	if c := check(t, res, KindErrorRate); c.CanaryRequests != 30 {
		t.Errorf("canary requests %v since the baseline, want 30: the tests were restarted (asked at %v)", c.CanaryRequests, asked)
	}
}

// Until the first scrape after the start is queryable, nothing is read:
// a difference from an earlier scrape would count traffic from before the
// rollout, such as a predecessor's errors on the same canary.
func TestRunnerWaitsForTheFirstScrapeAfterTheStart(t *testing.T) {
	var asked []time.Time
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90, asked: &asked}, ScrapeInterval: time.Second})
	res, _ := r.Analyze(context.Background(), Request{Namespace: "shop", Name: "ro", Config: cfg, Start: t0, Now: t0.Add(1500 * time.Millisecond)})
	if len(asked) != 0 || res.Verdict != Inconclusive || !res.NoData || !strings.Contains(res.Reason, "begins with the first scrape after") {
		t.Fatalf("asked at %v, verdict %s (%s): want nothing read yet, and no data", asked, res.Verdict, res.Reason)
	}
}

// steppedTraces is fakeTraces on a grid of step, as the Jaeger source
// answers.
type steppedTraces struct {
	fakeTraces
	step time.Duration
}

func (s *steppedTraces) Step() time.Duration { return s.step }

// TestRunnerFirstTraceSearchIsOnTheGrid: with a source that aligns ranges
// down to its step, a rollout that starts between two steps first asks
// from the next step, so that no trace from before its start (a
// predecessor's) is counted; one that starts on the grid asks from its
// start.
func TestRunnerFirstTraceSearchIsOnTheGrid(t *testing.T) {
	for _, tc := range []struct {
		start, want time.Time
	}{
		{t0.Add(time.Second), t0.Add(2 * time.Second)},
		{t0.Add(2 * time.Second), t0.Add(2 * time.Second)},
	} {
		tr := &steppedTraces{fakeTraces: fakeTraces{n: 1, ms: 10}, step: 2 * time.Second}
		r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90}, Traces: tr, ScrapeInterval: time.Second})
		req := Request{Namespace: "shop", Name: "ro", Config: DefaultConfig(), Target: Target{Service: "checkout"}, Start: tc.start}
		for i := 1; i <= 4; i++ {
			req.Now = tc.start.Add(time.Duration(i) * 2 * time.Second)
			if _, err := r.Analyze(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
		if len(tr.ranges) == 0 || !tr.ranges[0][0].Equal(tc.want) {
			t.Errorf("start %v: first search %v, want it from %v", tc.start.Sub(t0), tr.ranges, tc.want.Sub(t0))
		}
	}
}

// slowHops is fakeMetrics whose hop reading fails its first fail times,
// as the largest shared query of a big mesh times out; it records the
// instants hops were asked for.
type slowHops struct {
	fakeMetrics
	fail  int
	asked []time.Time
}

func (s *slowHops) Hops(_ context.Context, _ Target, at time.Time) (map[string]Pair, error) {
	s.asked = append(s.asked, at)
	if s.fail > 0 {
		s.fail--
		return nil, fmt.Errorf("hop latency: context deadline exceeded: %w", ErrUnavailable)
	}
	return map[string]Pair{"db": {Canary: side(5, 0, 20), Stable: side(45, 0, 20)}}, nil
}

// TestRunnerHopBaselineApartFromInbound: a hop reading that fails at the
// baseline leaves the inbound checks judged, only the hops without data;
// the hops' baseline is read at the start on a later tick, never taken
// from a reading of now.
func TestRunnerHopBaselineApartFromInbound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Traces = false
	m := &slowHops{fakeMetrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90}, fail: 1}
	r := NewRunner(RunnerOptions{Metrics: m, ScrapeInterval: time.Second})
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Start: t0, Now: t0.Add(10 * time.Second)}
	res, err := r.Analyze(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Checks {
		switch {
		case c.Hop == "" && c.Source == "prometheus" && (c.Verdict != Pass || c.CanaryRequests != 90):
			t.Errorf("inbound %s: %s (%s), %v canary requests; want judged and passed on 90", c.Check, c.Verdict, c.Reason, c.CanaryRequests)
		case c.Hop != "" && (c.Verdict != Inconclusive || !strings.Contains(c.Reason, "hop latency")):
			t.Errorf("hop %s %s: %s (%s); want Inconclusive naming the hop reading", c.Hop, c.Check, c.Verdict, c.Reason)
		}
	}
	if len(m.asked) != 1 || !m.asked[0].Equal(t0.Add(time.Second)) {
		t.Fatalf("hops asked at %v, want only the baseline (the first scrape after the start)", m.asked)
	}
	req.Now = t0.Add(11 * time.Second)
	if _, err := r.Analyze(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(m.asked) != 3 || !m.asked[1].Equal(t0.Add(time.Second)) || !m.asked[2].Equal(req.Now) {
		t.Errorf("hops asked at %v, want the baseline again, then now", m.asked)
	}

	// A hop baseline that keeps failing is read, once the inbound
	// instant is more than lateBaseline old, lateBaseline before now.
	m = &slowHops{fakeMetrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90}, fail: 2}
	r = NewRunner(RunnerOptions{Metrics: m, ScrapeInterval: time.Second})
	for _, now := range []time.Duration{10 * time.Second, 11 * time.Second, 40 * time.Second} {
		req.Now = t0.Add(now)
		if _, err := r.Analyze(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Time{t0.Add(time.Second), t0.Add(time.Second), t0.Add(30 * time.Second), t0.Add(40 * time.Second)}
	if !slices.Equal(m.asked, want) {
		t.Errorf("hops asked at %v, want %v: the inbound instant twice, then lateBaseline before now, then now", m.asked, want)
	}
}

// The state of a rollout not analysed for five minutes (finished or
// deleted) is dropped by a later tick of another, and the sweep that
// drops it runs at most once a minute.
func TestRunnerForgetsIdleRollouts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90}, ScrapeInterval: time.Second})
	tick := func(name string, at time.Duration) {
		t.Helper()
		if _, err := r.Analyze(context.Background(), Request{Namespace: "shop", Name: name, Config: cfg, Start: t0, Now: t0.Add(at)}); err != nil {
			t.Fatal(err)
		}
	}
	tick("old", 10*time.Second)
	tick("new", 5*time.Minute)                // a sweep: "old" is not idle yet
	tick("new", 5*time.Minute+30*time.Second) // idle, but no sweep within a minute of the last
	if len(r.states) != 2 {
		t.Errorf("%d states, want both kept", len(r.states))
	}
	tick("new", 6*time.Minute+10*time.Second)
	if _, ok := r.states["shop/old"]; ok || len(r.states) != 1 {
		t.Errorf("states %v: want the idle rollout's dropped", slices.Collect(maps.Keys(r.states)))
	}
}
