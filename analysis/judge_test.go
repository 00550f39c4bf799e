package analysis

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func stats(n, errs, p99 float64) Stats { return Stats{Requests: n, Errors: errs, P99Ms: p99} }

// slowest is n requests of 5 ms, of which k took ms instead.
func slowest(n, k int, ms float64) Stats {
	st := Stats{Requests: float64(n), P99Ms: ms}
	for i := 0; i < n; i++ {
		v := 5.0
		if i >= n-k {
			v = ms
		}
		st.Latencies = append(st.Latencies, v)
	}
	return st
}

// bucketed is n requests in Istio's buckets, of which slow are in the
// (250, 500] bucket and the rest in (1, 5]; p99 is given.
func bucketed(n, slow, p99 float64) Stats {
	return Stats{Requests: n, P99Ms: p99, Buckets: []Bucket{
		{1, 0}, {5, n - slow}, {10, n - slow}, {25, n - slow}, {50, n - slow}, {100, n - slow}, {250, n - slow}, {500, n}, {math.Inf(1), n},
	}}
}

func TestStatsAbove(t *testing.T) {
	b := bucketed(100, 10, 400)
	if got := b.Above(300); math.Abs(got-8) > 1e-9 { // 10 in (250,500]: 20% of the bucket lies below 300
		t.Errorf("Above(300) from buckets = %v, want 8", got)
	}
	if got := slowest(50, 3, 100).Above(50); got != 3 {
		t.Errorf("Above(50) from latencies = %v, want 3", got)
	}
	if got := (Stats{Requests: 10}).Above(5); !math.IsNaN(got) {
		t.Errorf("Above without a distribution = %v, want NaN", got)
	}
}

func er(hop string, c, s Stats) Measurement {
	return Measurement{Check: "error-rate", Kind: KindErrorRate, Hop: hop, Source: "prometheus", Pair: Pair{c, s}, Limit: DefaultConfig().ErrorRate}
}

func lat(hop string, c, s Stats) Measurement {
	return Measurement{Check: "latency-p99", Kind: KindLatency, Hop: hop, Source: "prometheus", Pair: Pair{c, s}, Limit: DefaultConfig().Latency}
}

func TestEvaluate(t *testing.T) {
	healthy := stats(200, 0, 20)
	stable := stats(2000, 4, 22)
	dry := func(m Measurement) Measurement { m.Limit.DryRun = true; return m }
	fast := func(m Measurement) Measurement { m.Fast = true; return m }
	tests := []struct {
		name     string
		ms       []Measurement
		verdict  Verdict
		fastFail bool
		reason   []string
	}{
		{"nothing measured is never a pass", nil, Inconclusive, false, []string{"no check could be evaluated"}},
		{"no data is inconclusive", []Measurement{{Check: "error-rate", Kind: KindErrorRate, Source: "prometheus", Err: fmt.Errorf("no series: %w", ErrNoData)}},
			Inconclusive, false, []string{"no data"}},
		{"an unavailable source says so", []Measurement{{Check: "error-rate", Kind: KindErrorRate, Source: "prometheus", Err: fmt.Errorf("connection refused: %w", ErrUnavailable)}},
			Inconclusive, false, []string{"prometheus data source unavailable"}},
		{"too few canary requests", []Measurement{er("", stats(5, 0, 10), stable)}, Inconclusive, false, []string{"only 5 canary requests", "need 20"}},
		{"healthy canary passes", []Measurement{er("", healthy, stable), lat("", healthy, stable)}, Pass, false, []string{"all 2 checks passed"}},
		{"20% errors fail fast with both values", []Measurement{er("", stats(200, 40, 20), stable), lat("", healthy, stable)}, Fail, true,
			[]string{"error-rate (inbound) failed", "canary 20.00% vs stable 0.20%", "limit 0.70%"}},
		{"a small excess on a small sample is not yet significant", []Measurement{er("", stats(50, 1, 20), stable)}, Inconclusive, false,
			[]string{"above the limit but not yet significant"}},
		{"slow canary fails the p99 check, not fast", []Measurement{er("", healthy, stable), lat("", stats(200, 0, 320), stable)}, Fail, false,
			[]string{"latency-p99 (inbound) failed", "p99 320 ms vs 22 ms on stable (limit 36 ms)"}},
		{"one slow request in fifty is not yet a slow canary", []Measurement{lat("checkout → payments", slowest(50, 1, 22), stats(900, 0, 8))}, Inconclusive, false,
			[]string{"only 1 of 50 canary requests were slower than 20 ms: not yet significant"}},
		{"most requests slower than the limit is a slow canary", []Measurement{lat("checkout → payments", slowest(50, 40, 250), stats(900, 0, 8))}, Fail, false,
			[]string{"latency-p99 on checkout → payments failed"}},
		{"histogram buckets: a real slowdown fails", []Measurement{lat("", bucketed(200, 150, 320), stats(2000, 0, 22))}, Fail, false,
			[]string{"latency-p99 (inbound) failed"}},
		{"stable too small: the absolute limit alone", []Measurement{lat("", stats(200, 0, 400), stats(3, 0, 10))}, Pass, false,
			[]string{"n/a (too few requests)", "limit 500 ms"}},
		{"a slow hop names the hop", []Measurement{er("", healthy, stable), lat("checkout → payments", stats(600, 0, 840), stats(4000, 0, 95))}, Fail, false,
			[]string{"latency-p99 on checkout → payments failed", "p99 840 ms vs 95 ms on stable"}},
		{"a rarely called hop is skipped, not blocking", []Measurement{er("", healthy, stable), lat("checkout → inventory", stats(3, 0, 900), stable)}, Pass, false, nil},
		{"a failing dry-run check is reported and does not act", []Measurement{er("", healthy, stable), dry(lat("", stats(200, 0, 900), stable))}, Pass, false, nil},
		{"a fast window that is merely high is skipped", []Measurement{er("", healthy, stable), fast(er("", stats(30, 1, 20), stable))}, Pass, false, nil},
		{"a fast window far over the limit fails fast", []Measurement{er("", healthy, stable), fast(er("", stats(30, 9, 20), stable))}, Fail, true,
			[]string{"over the last few seconds failed"}},
		{"a small fast window may fail fast when significant", []Measurement{er("", healthy, stable), fast(er("", stats(12, 3, 20), stable))}, Fail, true,
			[]string{"over the last few seconds failed"}},
		{"one error in a small fast window is noise", []Measurement{er("", healthy, stable), fast(er("", stats(12, 1, 20), stable))}, Pass, false, nil},
		{"custom check", []Measurement{{Check: "queue-depth", Kind: KindCustom, Source: "prometheus", Value: 12, Custom: CustomCheck{Name: "queue-depth", Op: "<", Threshold: 10}}},
			Fail, false, []string{"queue-depth failed: 12, want < 10"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Evaluate(tc.ms, DefaultConfig())
			if r.Verdict != tc.verdict || r.FastFail != tc.fastFail {
				t.Fatalf("verdict %s fastFail %v, want %s %v (reason %q)", r.Verdict, r.FastFail, tc.verdict, tc.fastFail, r.Reason)
			}
			all := r.Reason
			for _, c := range r.Checks {
				all += " | " + c.Reason
			}
			for _, want := range tc.reason {
				if !strings.Contains(all, want) {
					t.Errorf("reason %q does not contain %q", r.Reason, want)
				}
			}
			if len(r.Checks) != len(tc.ms) {
				t.Errorf("%d check results for %d measurements", len(r.Checks), len(tc.ms))
			}
		})
	}
}

func TestDryRunFailureIsReported(t *testing.T) {
	m := lat("", stats(200, 0, 900), stats(2000, 0, 20))
	m.Limit.DryRun = true
	r := Evaluate([]Measurement{er("", stats(200, 0, 20), stats(2000, 0, 20)), m}, DefaultConfig())
	c := r.Checks[1]
	if c.Verdict != Fail || !c.DryRun || r.Verdict != Pass {
		t.Fatalf("dry-run check %s dryRun=%v, rollout %s; want a reported Fail that does not act", c.Verdict, c.DryRun, r.Verdict)
	}
}

func TestBinomialTail(t *testing.T) {
	tests := []struct {
		k, n, p float64
		lo, hi  float64
	}{
		{0, 100, 0.01, 1, 1},
		{1, 100, 0.01, 0.63, 0.64}, // 1 - 0.99^100
		{10, 50, 0.01, 0, 1e-9},
		{5, 10, 0.5, 0.62, 0.63},
	}
	for _, tc := range tests {
		if got := binomialTail(tc.k, tc.n, tc.p); got < tc.lo || got > tc.hi || math.IsNaN(got) {
			t.Errorf("P(X>=%v | n=%v, p=%v) = %v, want in [%v, %v]", tc.k, tc.n, tc.p, got, tc.lo, tc.hi)
		}
	}
}

func TestRenderQuery(t *testing.T) {
	q, err := RenderQuery(`sum(rate(x{namespace="{{ .Namespace }}",workload="{{ .CanaryWorkload }}"}[1m]))`,
		map[string]string{"Namespace": "shop", "CanaryWorkload": "checkout-v2"})
	if err != nil || q != `sum(rate(x{namespace="shop",workload="checkout-v2"}[1m]))` {
		t.Fatalf("RenderQuery = %q, %v", q, err)
	}
	if _, err := RenderQuery(`{{ .Nope }}`, map[string]string{}); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("unknown variable: err = %v, want one naming it", err)
	}
}
