package analysis

import (
	"strings"
	"testing"
	"time"
)

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

func TestFormatValueThreeSignificantFigures(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{497.5, "ms", "498 ms"}, {23.99, "ms", "24 ms"}, {38.788, "ms", "38.8 ms"}, {5.2, "%", "5.2%"},
		{0.00123, "", "0.00123"}, {12345, "ms", "12300 ms"}, {0, "%", "0%"}, {1, "calls/req", "1 calls/req"},
	} {
		if got := FormatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("FormatValue(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

func TestTimesLimit(t *testing.T) {
	for _, tc := range []struct {
		c    CheckResult
		want string
	}{
		{CheckResult{Kind: KindLatency, Canary: 780, Limit: 50}, "×15.6 the limit"},
		{CheckResult{Kind: KindErrorRate, Canary: 5.2, Limit: 1}, "×5.2 the limit"},
		{CheckResult{Kind: KindErrorRate, Canary: 0.8, Limit: 1}, ""}, // within
		{CheckResult{Kind: KindErrorRate, Canary: 1, Limit: 1}, ""},   // at the limit is not over
		{CheckResult{Kind: KindErrorRate, Canary: 3, Limit: 0}, ""},   // no limit to compare
		{CheckResult{Kind: KindCustom, Canary: 340, Limit: 100}, ""},  // the operator may want more
		{CheckResult{Kind: KindCallRate, Canary: 2.5, Limit: 1.25}, "×2 the limit"},
	} {
		if got := FormatTimesLimit(tc.c); got != tc.want {
			t.Errorf("FormatTimesLimit(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestFormatWindow(t *testing.T) {
	since := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		since time.Time
		after time.Duration
		want  string
	}{
		{since, 42*time.Second + 400*time.Millisecond, "since the analysis began, 42 s of data"},
		{since, 185 * time.Second, "since the analysis began, 3 min 5 s of data"},
		{since, 10 * time.Minute, "since the analysis began, 10 min of data"},
		{since, 130 * time.Minute, "since the analysis began, 2 h 10 min of data"},
		{since, -time.Second, "since the analysis began, 0 s of data"},
		{time.Time{}, time.Second, ""},
	} {
		if got := FormatWindow(tc.since, since.Add(tc.after)); got != tc.want {
			t.Errorf("FormatWindow(+%v) = %q, want %q", tc.after, got, tc.want)
		}
	}
}

// A failure says once everything a person needs, from the fields.
func TestSummary(t *testing.T) {
	since := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := since.Add(42 * time.Second)
	for _, tc := range []struct {
		c    CheckResult
		want string
	}{
		{CheckResult{Check: "latency-p99", Kind: KindLatency, Hop: "checkout → payments", Source: "prometheus", Since: since,
			Canary: 780, CanaryLow: 610, CanaryHigh: 912, Stable: 48, StableRequests: 900, Limit: 50, Unit: "ms",
			Evidence: 140, Threshold: 100, EvidenceAtSeconds: 31.2},
			"latency-p99 on checkout → payments from metrics, since the analysis began, 42 s of data: canary 780 ms [610–912 ms] vs stable 48 ms, " +
				"limit 50 ms (×15.6 the limit); evidence 1/α reached at 31.2 s"},
		{CheckResult{Check: "error-rate", Kind: KindErrorRate, Source: "jaeger", Since: since, Canary: 20, Limit: 1, Unit: "%"},
			"error-rate on inbound traffic from traces, since the analysis began, 42 s of data: canary 20% vs stable n/a (no stable traffic), limit 1% (×20 the limit)"},
		{CheckResult{Check: "queue-depth", Kind: KindCustom, Source: "prometheus", Canary: 340, Limit: 100},
			"queue-depth (custom query) from metrics: 340, threshold 100"},
	} {
		if got := tc.c.Summary(at); got != tc.want {
			t.Errorf("Summary =\n %q, want\n %q", got, tc.want)
		}
	}
}
