package analysis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeMetrics serves fixed pairs; it is a fake of pure data, for the
// runner's bookkeeping. The real sources are tested against real servers.
type fakeMetrics struct {
	in   Pair
	err  error
	hops map[string]Pair
}

func (f fakeMetrics) Inbound(context.Context, Target, time.Duration, time.Time) (Pair, error) {
	return f.in, f.err
}
func (f fakeMetrics) Hops(context.Context, Target, time.Duration, time.Time) (map[string]Pair, error) {
	return f.hops, f.err
}
func (f fakeMetrics) Scalar(context.Context, string, time.Time) (float64, error) { return 0, ErrNoData }

// fakeTraces returns n canary and n stable calls of ms milliseconds per
// fetch and records the ranges asked for.
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

func TestRunnerTraceWindow(t *testing.T) {
	tr := &fakeTraces{n: 8, ms: 900}
	healthy := Pair{Canary: Stats{Requests: 100, P99Ms: 20}, Stable: Stats{Requests: 900, P99Ms: 20}}
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{in: healthy, hops: map[string]Pair{}}, Traces: tr, ScrapeInterval: time.Second})
	cfg := DefaultConfig()
	cfg.Window = 10 * time.Second
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	req := Request{Namespace: "shop", Name: "ro", Config: cfg, Target: Target{Service: "checkout"}}

	var res Result
	for i := 0; i < 3; i++ {
		req.Now = t0.Add(time.Duration(i) * 2 * time.Second)
		var err error
		if res, err = r.Analyze(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// Each tick asks only for what is new since the previous one.
	if got := tr.ranges[1][0]; !got.Equal(t0) || !tr.ranges[2][0].Equal(t0.Add(2*time.Second)) {
		t.Errorf("fetch ranges %v: each tick must start where the last ended", tr.ranges)
	}
	// Three fetches of 8 calls add up to 24 in the window: enough to judge.
	var found bool
	for _, c := range res.Checks {
		if c.Source == "jaeger" && c.Check == "latency-p99" && c.Hop == "checkout → payments" {
			found = true
			if c.Verdict != Fail || c.CanaryRequests != 24 || c.TraceID != "t0" {
				t.Errorf("trace p99 check %+v: want Fail over 24 accumulated calls with the example trace", c)
			}
		}
	}
	if !found || res.Verdict != Fail {
		t.Fatalf("verdict %s (%s): want the trace check to fail", res.Verdict, res.Reason)
	}
	// Past the window, old calls are evicted.
	req.Now = t0.Add(30 * time.Second)
	res, _ = r.Analyze(context.Background(), req)
	for _, c := range res.Checks {
		if c.Source == "jaeger" && c.Hop == "checkout → payments" && c.CanaryRequests != 8 {
			t.Errorf("after the window passed, %v canary calls remain; want only the latest 8", c.CanaryRequests)
		}
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
	r := NewRunner(RunnerOptions{Metrics: fakeMetrics{err: fmt.Errorf("dial: connection refused: %w", ErrUnavailable)}})
	res, _ := r.Analyze(context.Background(), Request{Config: DefaultConfig(), Now: time.Now()})
	if res.Verdict != Inconclusive || !strings.Contains(res.Reason, "data source unavailable") {
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
