package analysis

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// side is n requests of which errs failed, all taking ms milliseconds, as
// cumulative counters in Istio's buckets.
func side(n, errs, ms float64) Stats {
	s := Stats{Requests: n, Errors: errs}
	for _, ub := range append(append([]float64(nil), IstioBuckets...), math.Inf(1)) {
		c := 0.0
		if ms <= ub {
			c = n
		}
		s.Buckets = append(s.Buckets, Bucket{UpperMs: ub, Count: c})
	}
	return s
}

// tick is one interval's traffic of each side: requests, errors, latency.
type tick struct{ cn, ce, cms, sn, se, sms float64 }

// run feeds a tracker the cumulative counters of the given intervals, one
// second apart, and judges the result.
func run(cfg Config, ticks []tick) Result {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr := NewTracker(cfg, t0)
	var c, s Stats
	tr.ObserveInbound(t0, Pair{Canary: c, Stable: s})
	for i, tk := range ticks {
		c = add(c, side(tk.cn, tk.ce, tk.cms))
		s = add(s, side(tk.sn, tk.se, tk.sms))
		tr.ObserveInbound(t0.Add(time.Duration(i+1)*time.Second), Pair{Canary: c, Stable: s})
	}
	return Evaluate(tr.Measurements("checkout"), cfg)
}

func repeat(n int, tk tick) []tick {
	out := make([]tick, n)
	for i := range out {
		out[i] = tk
	}
	return out
}

func inboundOnly() Config {
	cfg := DefaultConfig()
	cfg.Hops, cfg.Traces = false, false
	return cfg
}

func check(t *testing.T, r Result, kind Kind) CheckResult {
	t.Helper()
	for _, c := range r.Checks {
		if c.Kind == kind && c.Hop == "" {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", kind, r.Checks)
	return CheckResult{}
}

func TestEvaluateSequential(t *testing.T) {
	tests := []struct {
		name    string
		ticks   []tick
		verdict Verdict
		noData  bool
		reason  []string
	}{
		{"identical sides pass once the sample is there", repeat(30, tick{20, 0, 20, 180, 0, 20}), Pass, false,
			[]string{"all 4 checks passed"}},
		{"50% errors at 10% weight fail in one scrape", []tick{{20, 10, 20, 180, 1, 20}}, Fail, false,
			[]string{"error-rate (inbound) failed", "error rate canary 50% [", "vs stable 0.556%", "evidence 1/α reached at 1 s"}},
		{"a sample still growing waits, with data on both sides", []tick{{5, 0, 20, 45, 0, 20}}, Inconclusive, false,
			[]string{"5 canary and 45 stable requests so far, need 20 of each"}},
		{"a canary with no traffic has no data", repeat(5, tick{0, 0, 0, 200, 0, 20}), Inconclusive, true,
			[]string{"0 canary"}},
		{"a slow canary fails the latency check", repeat(3, tick{20, 0, 400, 180, 0, 20}), Fail, false,
			[]string{"latency-p99 (inbound) failed", "p99 canary", "vs stable"}},
		{"a slightly worse canary within the tolerance passes", repeat(200, tick{1000, 10, 20, 1000, 6, 20}), Pass, false,
			[]string{"worse but within"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Evaluate(nil, DefaultConfig())
			if tc.ticks != nil {
				r = run(inboundOnly(), tc.ticks)
			}
			if r.Verdict != tc.verdict || r.NoData != tc.noData {
				t.Fatalf("verdict %s noData %v, want %s %v (reason %q)", r.Verdict, r.NoData, tc.verdict, tc.noData, r.Reason)
			}
			all := r.Reason
			for _, c := range r.Checks {
				all += " | " + c.Reason
			}
			for _, want := range tc.reason {
				if !strings.Contains(all, want) {
					t.Errorf("reasons %q do not contain %q", all, want)
				}
			}
		})
	}
}

func TestEvaluateNoDataIsNeverAPass(t *testing.T) {
	for _, err := range []error{fmt.Errorf("no series: %w", ErrNoData), fmt.Errorf("connection refused: %w", ErrUnavailable)} {
		r := Evaluate([]Measurement{{Check: "error-rate", Kind: KindErrorRate, Source: "prometheus", Err: err}}, DefaultConfig())
		if r.Verdict != Inconclusive || !r.NoData {
			t.Errorf("%v: verdict %s noData %v, want Inconclusive without data", err, r.Verdict, r.NoData)
		}
	}
	if r := Evaluate(nil, DefaultConfig()); r.Verdict != Inconclusive || !r.NoData {
		t.Errorf("nothing measured: %s, want Inconclusive", r.Verdict)
	}
}

// The evidence and intervals people read are in the check's fields.
func TestEvaluateReportsIntervalAndEvidence(t *testing.T) {
	r := run(inboundOnly(), repeat(10, tick{20, 4, 20, 180, 1, 20}))
	c := check(t, r, KindErrorRate)
	if c.Verdict != Fail || !(c.CanaryLow < 20 && c.CanaryHigh > 20) || c.Evidence < c.Threshold || c.EvidenceAtSeconds <= 0 {
		t.Fatalf("check %+v: want a Fail with an interval around 20%% and evidence past its threshold", c)
	}
	if c.Threshold != 1/(0.01*inboundShare/inboundTests) {
		t.Errorf("threshold %v, want 1/α_k = %v", c.Threshold, 1/(0.01*inboundShare/inboundTests))
	}
}

// Stable above the SLO is said as such, and the canary is not failed for it.
func TestEvaluateStableAboveSLO(t *testing.T) {
	cfg := inboundOnly()
	r := run(cfg, repeat(120, tick{50, 1, 20, 450, 9, 20})) // both at 2%
	if !r.StableAboveSLO || r.Verdict == Fail {
		t.Fatalf("verdict %s stableAboveSLO %v (%s): want stable reported above the SLO and no failure", r.Verdict, r.StableAboveSLO, r.Reason)
	}
	c := check(t, r, KindErrorSLO)
	if !c.StableAboveLimit || !strings.Contains(c.Reason, "stable is also above the 1% SLO: 2%") {
		t.Errorf("SLO check %q: want it to say stable is also above the 1%% SLO", c.Reason)
	}
}

func TestEvaluateCanaryAboveSLOAlone(t *testing.T) {
	r := run(inboundOnly(), repeat(60, tick{50, 2, 20, 450, 1, 20}))
	c := check(t, r, KindErrorSLO)
	if c.Verdict != Fail || c.StableAboveLimit || r.Verdict != Fail {
		t.Fatalf("SLO check %+v, verdict %s: want the canary failed at 4%% against a 1%% SLO", c, r.Verdict)
	}
}

func TestEvaluateCallRate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Traces = false
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr := NewTracker(cfg, t0)
	tr.ObserveInbound(t0, Pair{})
	tr.ObserveHops(t0, map[string]Pair{})
	var in, calls Pair
	for i := 1; i <= 10; i++ {
		in = Pair{Canary: add(in.Canary, side(20, 0, 20)), Stable: add(in.Stable, side(180, 0, 20))}
		calls = Pair{Canary: add(calls.Canary, side(100, 0, 5)), Stable: add(calls.Stable, side(180, 0, 5))}
		now := t0.Add(time.Duration(i) * time.Second)
		tr.ObserveInbound(now, in)
		tr.ObserveHops(now, map[string]Pair{"payments": calls})
	}
	r := Evaluate(tr.Measurements("checkout"), cfg)
	var c *CheckResult
	for i := range r.Checks {
		if r.Checks[i].Kind == KindCallRate {
			c = &r.Checks[i]
		}
	}
	if c == nil || c.Verdict != Fail || r.Verdict != Fail {
		t.Fatalf("call-rate check %+v, verdict %s: want a failure", c, r.Verdict)
	}
	for _, want := range []string{"call-rate on checkout → payments failed", "5 calls per request", "vs 1 on stable (×5)"} {
		if !strings.Contains(c.Reason, want) {
			t.Errorf("reason %q does not contain %q", c.Reason, want)
		}
	}
}

// A series that first appears between two readings counts from zero:
// the canary's first 5xx is seen.
func TestTrackerCountsANewSeriesFromZero(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr := NewTracker(inboundOnly(), t0)
	tr.ObserveInbound(t0, Pair{Canary: Stats{Requests: 100}, Stable: Stats{Requests: 900}})
	// Counters before the baseline are not counted; the first error is.
	tr.ObserveInbound(t0.Add(time.Second), Pair{Canary: Stats{Requests: 110, Errors: 1}, Stable: Stats{Requests: 990}})
	if got := tr.in.cum; got.Canary.Requests != 10 || got.Canary.Errors != 1 || got.Stable.Requests != 90 {
		t.Fatalf("cumulative %+v: want 10 canary requests with 1 error and 90 stable", got)
	}
	// A reset (a restarted pod) counts nothing for that interval.
	tr.ObserveInbound(t0.Add(2*time.Second), Pair{Canary: Stats{Requests: 5}, Stable: Stats{Requests: 1000}})
	if got := tr.in.cum.Canary.Requests; got != 10 {
		t.Errorf("after a reset the canary has %v requests, want still 10", got)
	}
}

func TestDryRunFailureIsReported(t *testing.T) {
	cfg := inboundOnly()
	cfg.Latency.DryRun = true
	r := run(cfg, repeat(3, tick{20, 0, 900, 180, 0, 20}))
	c := check(t, r, KindLatency)
	if c.Verdict != Fail || !c.DryRun || r.Verdict == Fail {
		t.Fatalf("dry-run check %s dryRun=%v, rollout %s; want a reported Fail that does not act", c.Verdict, c.DryRun, r.Verdict)
	}
}

func TestEvaluateCustomCheck(t *testing.T) {
	r := Evaluate([]Measurement{{Check: "queue-depth", Kind: KindCustom, Source: "prometheus", Value: 12,
		Custom: CustomCheck{Name: "queue-depth", Op: "<", Threshold: 10}}}, DefaultConfig())
	if r.Verdict != Fail || !strings.Contains(r.Reason, "queue-depth failed: 12, want < 10") {
		t.Fatalf("custom check: %s %q", r.Verdict, r.Reason)
	}
}

// A baseline with no hop series yet (nil) is a baseline all the same.
func TestTrackerHopsAfterAnEmptyBaseline(t *testing.T) {
	tr := NewTracker(DefaultConfig(), t0)
	tr.ObserveInbound(t0, Pair{})
	tr.ObserveHops(t0, nil)
	tr.ObserveInbound(t0.Add(time.Second), Pair{Canary: side(10, 0, 5), Stable: side(90, 0, 5)})
	tr.ObserveHops(t0.Add(time.Second), map[string]Pair{"payments": {Canary: side(10, 0, 5), Stable: side(90, 0, 5)}})
	if h := tr.hops["payments"]; h == nil || h.cum.Canary.Requests != 10 {
		t.Fatalf("hop after an empty baseline: %+v, want its calls counted from zero", h)
	}
}

func TestP99Interval(t *testing.T) {
	// 10,000 requests: 98% within 25 ms, 1.5% in (25, 50], 0.5% in (50, 100].
	s := Stats{Requests: 10000, Buckets: []Bucket{{10, 5000}, {25, 9800}, {50, 9950}, {100, 10000}, {250, 10000}, {math.Inf(1), 10000}}}
	iv := s.p99Interval()
	if iv.Low != 25 || iv.High != 50 {
		t.Errorf("p99 interval %+v, want [25, 50]: more than 1%% are slower than 25 ms, fewer than 1%% (0.5%%) slower than 50", iv)
	}
	if p := s.p99(); !(p > 25 && p <= 50) {
		t.Errorf("p99 %v, want in (25, 50]", p)
	}
}

// The request counter and the latency histogram are two series that may
// be read a scrape apart: the latency tests use the histogram alone, so a
// counter ahead of its histogram is no slow canary, nor a slow stable.
func TestLatencyJudgedWithinTheHistogram(t *testing.T) {
	cfg := inboundOnly()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr := NewTracker(cfg, t0)
	tr.ObserveInbound(t0, Pair{})
	var c, s Stats
	for i := 1; i <= 30; i++ {
		c, s = add(c, side(20, 0, 20)), add(s, side(180, 0, 20))
		// The counters run one scrape ahead of the histograms.
		ahead := func(x Stats, n float64) Stats { x.Requests += n; return x }
		tr.ObserveInbound(t0.Add(time.Duration(i)*time.Second), Pair{Canary: ahead(c, 20), Stable: ahead(s, 180)})
	}
	r := Evaluate(tr.Measurements("checkout"), cfg)
	if r.Verdict != Pass || r.StableAboveSLO {
		t.Fatalf("verdict %s, stable above SLO %v (%s): want a pass", r.Verdict, r.StableAboveSLO, r.Reason)
	}
}
