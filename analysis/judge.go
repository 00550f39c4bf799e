package analysis

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Skipped is a check-level verdict: the check had nothing to judge (a hop
// the canary did not call often enough) and does not count either way. A
// rollout's verdict is never Skipped.
const Skipped Verdict = "Skipped"

// Kind says what a measurement measures.
type Kind string

// The kinds of measurement.
const (
	KindErrorRate Kind = "error-rate"
	KindLatency   Kind = "latency-p99"
	KindCustom    Kind = "custom"
)

// Measurement is one check's raw data for one tick, before judging.
type Measurement struct {
	// Check names the check, e.g. "error-rate" or a custom check's name.
	Check string
	Kind  Kind
	// Hop is "" for the canary's inbound traffic, or the edge, e.g.
	// "checkout → payments".
	Hop string
	// Source is where the data came from: "prometheus" or "jaeger".
	Source string
	Pair   Pair
	// Value is the custom query's value (KindCustom only).
	Value float64
	// Err is why there is no data: wraps ErrNoData or ErrUnavailable.
	Err    error
	Limit  Limit
	Custom CustomCheck
	// TraceID is an example trace of the canary on this hop.
	TraceID string
	// Fast marks a measurement over Config.FastWindow: it only ever acts
	// as a fast failure, and is Skipped otherwise.
	Fast bool
}

// CheckResult is one check's judgement.
type CheckResult struct {
	Check   string  `json:"check"`
	Hop     string  `json:"hop,omitempty"`
	Source  string  `json:"source"`
	Verdict Verdict `json:"verdict"`
	// Canary, Stable and Limit are in Unit: "%" for error rates, "ms" for
	// latencies. Stable is NaN-free: 0 with StableRequests 0 when unknown.
	Canary         float64 `json:"canary"`
	Stable         float64 `json:"stable"`
	Limit          float64 `json:"limit"`
	Unit           string  `json:"unit"`
	CanaryRequests float64 `json:"canaryRequests"`
	StableRequests float64 `json:"stableRequests"`
	Reason         string  `json:"reason"`
	DryRun         bool    `json:"dryRun,omitempty"`
	FastFail       bool    `json:"fastFail,omitempty"`
	TraceID        string  `json:"traceID,omitempty"`
}

// Evaluate judges a tick's measurements. It is pure. The rollout's verdict
// is Fail when any acting check fails, else Inconclusive when any acting
// check is inconclusive or none passed, else Pass. DryRun checks are
// judged and reported but never change the verdict.
func Evaluate(ms []Measurement, cfg Config) Result {
	res := Result{Verdict: Pass}
	var fails, inconc []CheckResult
	passed := 0
	for _, m := range ms {
		cr := judge(m, cfg)
		res.Checks = append(res.Checks, cr)
		if cr.DryRun {
			continue
		}
		switch cr.Verdict {
		case Fail:
			fails = append(fails, cr)
			res.FastFail = res.FastFail || cr.FastFail
		case Inconclusive:
			inconc = append(inconc, cr)
		case Pass:
			passed++
		}
	}
	switch {
	case len(fails) > 0:
		sort.SliceStable(fails, func(i, j int) bool { return fails[i].FastFail && !fails[j].FastFail })
		res.Verdict, res.Reason = Fail, joinReasons(fails)
	case len(inconc) > 0:
		res.Verdict, res.Reason = Inconclusive, joinReasons(inconc)
	case passed == 0:
		res.Verdict, res.Reason = Inconclusive, "no check could be evaluated"
	default:
		res.Reason = fmt.Sprintf("all %d checks passed", passed)
	}
	return res
}

func joinReasons(crs []CheckResult) string {
	parts := make([]string, len(crs))
	for i, c := range crs {
		parts[i] = c.Reason
	}
	return strings.Join(parts, "; ")
}

func judge(m Measurement, cfg Config) CheckResult {
	cr := CheckResult{Check: m.Check, Hop: m.Hop, Source: m.Source, DryRun: m.Limit.DryRun || m.Custom.DryRun,
		TraceID: m.TraceID, CanaryRequests: m.Pair.Canary.Requests, StableRequests: m.Pair.Stable.Requests}
	where := describe(m)
	if m.Err != nil {
		cr.Verdict = Inconclusive
		if m.Fast {
			cr.Verdict = Skipped
		}
		if errors.Is(m.Err, ErrUnavailable) {
			cr.Reason = fmt.Sprintf("%s: %s data source unavailable (%v)", where, m.Source, m.Err)
		} else {
			cr.Reason = fmt.Sprintf("%s: no data (%v)", where, m.Err)
		}
		return cr
	}
	switch m.Kind {
	case KindCustom:
		cr = judgeCustom(cr, m, where)
	case KindErrorRate:
		cr = judgeErrorRate(cr, m, cfg, where)
	default:
		cr = judgeLatency(cr, m, cfg, where)
	}
	if m.Fast && !(cr.Verdict == Fail && cr.FastFail) {
		cr.Verdict = Skipped
	}
	return cr
}

func describe(m Measurement) string {
	s := m.Check
	if m.Hop != "" {
		s += " on " + m.Hop
	} else if m.Kind != KindCustom {
		s += " (inbound)"
	}
	if m.Source == "jaeger" {
		s += " from traces"
	}
	if m.Fast {
		s += " over the last few seconds"
	}
	return s
}

// enough reports whether the canary has a sample worth judging; when not,
// the result says how many requests there were.
func enough(cr *CheckResult, m Measurement, cfg Config, where string) bool {
	need := cfg.MinRequests
	if m.Fast {
		// The short window only ever acts as a fast failure, which must
		// also be significant for its sample; a quarter of the sample size
		// (at least 5) lets it fire within a few scrapes on a small canary.
		need = max(5, math.Ceil(cfg.MinRequests/4))
	}
	if m.Pair.Canary.Requests >= need {
		return true
	}
	cr.Verdict = Inconclusive
	if m.Hop != "" {
		cr.Verdict = Skipped
	}
	cr.Reason = fmt.Sprintf("%s: only %.0f canary requests in the window, need %.0f", where, m.Pair.Canary.Requests, need)
	return false
}

func stableValue(s Stats, cfg Config, v float64) float64 {
	if s.Requests < cfg.MinRequests {
		return math.NaN()
	}
	return v
}

func judgeErrorRate(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	cr.Unit = "%"
	if !enough(&cr, m, cfg, where) {
		return cr
	}
	c := m.Pair.Canary.ErrorRate()
	s := stableValue(m.Pair.Stable, cfg, m.Pair.Stable.ErrorRate())
	limit := m.Limit.Bound(s)
	cr.Canary, cr.Stable, cr.Limit = 100*c, 100*zeroNaN(s), 100*limit
	vs := fmt.Sprintf("canary %.2f%% vs stable %s (limit %.2f%%, %.0f canary requests)", 100*c, pct(s), 100*limit, m.Pair.Canary.Requests)
	if c <= limit {
		cr.Verdict, cr.Reason = Pass, where+": "+vs
		return cr
	}
	// Above the limit: is it more than noise for this sample size?
	p := binomialTail(m.Pair.Canary.Errors, m.Pair.Canary.Requests, limit)
	if p >= cfg.Significance {
		cr.Verdict = Inconclusive
		cr.Reason = fmt.Sprintf("%s: %s is above the limit but not yet significant (p=%.2f)", where, vs, p)
		return cr
	}
	cr.Verdict, cr.Reason = Fail, fmt.Sprintf("%s failed: %s", where, vs)
	cr.FastFail = c >= cfg.FastFailFactor*m.Limit.Max
	return cr
}

func judgeLatency(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	cr.Unit = "ms"
	if !enough(&cr, m, cfg, where) {
		return cr
	}
	c := m.Pair.Canary.P99Ms
	if math.IsNaN(c) {
		cr.Verdict, cr.Reason = Inconclusive, where+": the canary's p99 cannot be computed"
		return cr
	}
	s := stableValue(m.Pair.Stable, cfg, m.Pair.Stable.P99Ms)
	limit := m.Limit.Bound(s)
	cr.Canary, cr.Stable, cr.Limit = c, zeroNaN(s), limit
	vs := fmt.Sprintf("p99 %s vs %s on stable (limit %.0f ms)", ms(c), msOrNA(s), limit)
	if c <= limit {
		cr.Verdict, cr.Reason = Pass, where+": "+vs
		return cr
	}
	// A p99 over a small sample is its slowest few requests. Fail only
	// when more requests were slower than the limit than the 1% a p99 at
	// the limit allows, beyond noise for this sample size.
	n := m.Pair.Canary.Requests
	if above := m.Pair.Canary.Above(limit); !math.IsNaN(above) {
		if p := binomialTail(math.Round(above), n, 0.01); p >= cfg.Significance {
			cr.Verdict = Inconclusive
			cr.Reason = fmt.Sprintf("%s: %s, but only %.0f of %.0f canary requests were slower than %.0f ms: not yet significant (p=%.2f)",
				where, vs, above, n, limit, p)
			return cr
		}
	}
	cr.Verdict, cr.Reason = Fail, fmt.Sprintf("%s failed: %s", where, vs)
	cr.FastFail = c >= cfg.FastFailFactor*m.Limit.Max
	return cr
}

func judgeCustom(cr CheckResult, m Measurement, where string) CheckResult {
	cr.Canary, cr.Limit = m.Value, m.Custom.Threshold
	ok := false
	switch m.Custom.Op {
	case "<":
		ok = m.Value < m.Custom.Threshold
	case "<=":
		ok = m.Value <= m.Custom.Threshold
	case ">":
		ok = m.Value > m.Custom.Threshold
	case ">=":
		ok = m.Value >= m.Custom.Threshold
	}
	cr.Verdict = Pass
	if !ok {
		cr.Verdict = Fail
	}
	cr.Reason = fmt.Sprintf("%s: %g, want %s %g", where, m.Value, m.Custom.Op, m.Custom.Threshold)
	if !ok {
		cr.Reason = fmt.Sprintf("%s failed: %g, want %s %g", where, m.Value, m.Custom.Op, m.Custom.Threshold)
	}
	return cr
}

// binomialTail is P(X >= k) for X ~ Binomial(n, p): how likely k or more
// errors in n requests are if the true error rate were exactly p.
func binomialTail(k, n, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1
	}
	ki, ni := int(math.Round(k)), int(math.Round(n))
	sum := 0.0
	for i := 0; i < ki && i <= ni; i++ {
		sum += math.Exp(logChoose(ni, i) + float64(i)*math.Log(p) + float64(ni-i)*math.Log1p(-p))
	}
	return math.Max(0, 1-sum)
}

func logChoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// FormatValue prints a check's value with at most three decimals and its
// unit, for people: "5.2%", "812 ms", "0.25".
func FormatValue(v float64, unit string) string {
	s := strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 3, 64), "0"), ".")
	switch unit {
	case "":
		return s
	case "%":
		return s + "%"
	}
	return s + " " + unit
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a (too few requests)"
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

func ms(v float64) string { return fmt.Sprintf("%.0f ms", v) }

func msOrNA(v float64) string {
	if math.IsNaN(v) {
		return "n/a (too few requests)"
	}
	return ms(v)
}
