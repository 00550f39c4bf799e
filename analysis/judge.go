package analysis

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Skipped is a check-level verdict: the check had nothing to judge (a hop
// the canary did not call often enough) and does not count either way. A
// rollout's verdict is never Skipped.
const Skipped Verdict = "Skipped"

// Kind says what a measurement measures.
type Kind string

// The kinds of measurement.
const (
	// KindErrorRate compares the canary's error rate with stable's.
	KindErrorRate Kind = "error-rate"
	// KindErrorSLO holds the canary's error rate to an absolute limit.
	KindErrorSLO Kind = "error-rate-slo"
	// KindLatency compares the canary's latency distribution with stable's.
	KindLatency Kind = "latency-p99"
	// KindLatencySLO holds the canary's p99 to an absolute limit.
	KindLatencySLO Kind = "latency-p99-slo"
	// KindCallRate compares the calls the canary makes to a downstream
	// service per inbound request with stable's.
	KindCallRate Kind = "call-rate"
	KindCustom   Kind = "custom"
)

// ErrNotJudged means a check was left out on purpose: a hop beyond
// MaxHops. It is reported as Skipped.
var ErrNotJudged = errors.New("not judged")

// Measurement is one check's data and sequential evidence at a tick,
// before judging.
type Measurement struct {
	// Check names the check, e.g. "error-rate" or a custom check's name.
	Check string
	Kind  Kind
	// Hop is "" for the canary's inbound traffic, or the edge, e.g.
	// "checkout → payments".
	Hop string
	// Source is where the data came from: "prometheus" or "jaeger".
	Source string
	// Pair is each side's traffic since the analysis started.
	Pair Pair
	// Inbound is each side's inbound traffic over the same readings as
	// Pair (KindCallRate only): calls per request are Pair over Inbound.
	Inbound Pair
	// Value is the custom query's value (KindCustom only).
	Value float64
	// Err is why there is no data: wraps ErrNoData, ErrUnavailable or
	// ErrNotJudged.
	Err    error
	Limit  Limit
	Custom CustomCheck
	// TraceID is an example trace of the canary on this hop.
	TraceID string
	// Evidence is the sequential test's e-value against "the canary is no
	// worse" (or "within the limit", for SLO kinds), and Alpha this test's
	// share of the rollout's α: the test rejects once Evidence reaches
	// 1/Alpha.
	Evidence float64
	Alpha    float64
	// EvidenceAt is when, since the analysis started, Evidence first
	// reached 1/Alpha; negative while it has not. A rejection stands.
	EvidenceAt time.Duration
	// Elapsed is how long the test has run.
	Elapsed time.Duration
	// StableEvidence is the stable side's e-value against the same
	// absolute limit (SLO kinds only).
	StableEvidence float64
}

// CheckResult is one check's judgement.
type CheckResult struct {
	Check   string  `json:"check"`
	Kind    Kind    `json:"kind"`
	Hop     string  `json:"hop,omitempty"`
	Source  string  `json:"source"`
	Verdict Verdict `json:"verdict"`
	// Canary, Stable and Limit are in Unit: "%" for error rates, "ms" for
	// latencies, "calls/req" for call rates. The Low and High fields are
	// each side's 95% confidence sequence, when there is one.
	Canary     float64 `json:"canary"`
	CanaryLow  float64 `json:"canaryLow,omitempty"`
	CanaryHigh float64 `json:"canaryHigh,omitempty"`
	Stable     float64 `json:"stable"`
	StableLow  float64 `json:"stableLow,omitempty"`
	StableHigh float64 `json:"stableHigh,omitempty"`
	Limit      float64 `json:"limit"`
	Unit       string  `json:"unit"`
	// CanaryRequests and StableRequests are the sample sizes.
	CanaryRequests float64 `json:"canaryRequests"`
	StableRequests float64 `json:"stableRequests"`
	// Evidence is the test's e-value and Threshold the 1/α it must reach;
	// EvidenceAtSeconds is when it did, since the analysis started.
	Evidence          float64 `json:"evidence"`
	Threshold         float64 `json:"threshold"`
	EvidenceAtSeconds float64 `json:"evidenceAtSeconds,omitempty"`
	// StableAboveLimit says stable itself is above an absolute limit.
	StableAboveLimit bool `json:"stableAboveLimit,omitempty"`
	// NoData says a side had no data at all (as opposed to a sample still
	// too small).
	NoData bool `json:"noData,omitempty"`
	// Since is the start of the window the check counts: the built-in
	// checks count every request since the analysis began. It is zero for
	// custom checks, whose query names its own range.
	Since   time.Time `json:"since,omitzero"`
	Reason  string    `json:"reason"`
	DryRun  bool      `json:"dryRun,omitempty"`
	TraceID string    `json:"traceID,omitempty"`
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

// FormatValue prints a check's value to three significant figures with its
// unit, for people: "5.2%", "812 ms", "0.25". Every surface uses it, so a
// value reads the same everywhere.
func FormatValue(v float64, unit string) string {
	s := sig3(v)
	switch unit {
	case "":
		return s
	case "%":
		return s + "%"
	}
	return s + " " + unit
}

// sig3 formats v with three significant figures, never in exponent form
// and with no trailing zeros: 0.00123, 1.5, 23.4, 498, 12300.
func sig3(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	digits := int(math.Floor(math.Log10(math.Abs(v)))) + 1
	dec := max(3-digits, 0)
	scale := math.Pow(10, float64(digits-3))
	r := math.Round(v/scale) * scale
	s := strconv.FormatFloat(r, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// FormatInterval prints a confidence interval, e.g. "[1.4–3%]", or ""
// when there is none.
func FormatInterval(low, high float64, unit string) string {
	if high <= 0 || high < low {
		return ""
	}
	return "[" + sig3(low) + "–" + FormatValue(high, unit) + "]"
}

// FormatEvidence says how far a sequential test has come: "evidence 1/α
// reached at 2.4 s", or "evidence 3.1 of the 800 needed"; "" when the
// check has no test.
func FormatEvidence(evidence, threshold, atSeconds float64) string {
	switch {
	case threshold <= 0:
		return ""
	case atSeconds > 0:
		return "evidence 1/α reached at " + sig3(atSeconds) + " s"
	}
	return "evidence " + sig3(evidence) + " of the " + sig3(threshold) + " needed"
}

// FormatWithInterval is a value followed by its interval, when it has
// one: "5.2% [3.1–8.4%]".
func FormatWithInterval(v, low, high float64, unit string) string {
	s := FormatValue(v, unit)
	if iv := FormatInterval(low, high, unit); iv != "" {
		s += " " + iv
	}
	return s
}

// SourceName names a data source for people: "metrics" for prometheus,
// "traces" for jaeger, any other as it is.
func SourceName(source string) string {
	switch source {
	case "prometheus":
		return "metrics"
	case "jaeger":
		return "traces"
	}
	return source
}

// HopName names a check's edge for people: the hop, or "inbound traffic"
// for the canary's own.
func HopName(hop string) string {
	if hop == "" {
		return "inbound traffic"
	}
	return hop
}

// TimesLimit is how many times its limit the canary's value is, when it
// is above a positive limit: 15.6 for 780 ms against a 50 ms limit. It is
// 0 when the canary is within its limit, and for custom checks, whose
// operator may want a value above the threshold.
func (c CheckResult) TimesLimit() float64 {
	if c.Kind == KindCustom || c.Limit <= 0 || !(c.Canary > c.Limit) || math.IsInf(c.Canary, 0) {
		return 0
	}
	return c.Canary / c.Limit
}

// FormatTimesLimit says how far over its limit the canary is, "×15.6 the
// limit", or "" when it is not over (see TimesLimit).
func FormatTimesLimit(c CheckResult) string {
	x := c.TimesLimit()
	if x == 0 {
		return ""
	}
	return "×" + sig3(x) + " the limit"
}

// FormatWindow says what a check counted at time at: "since the analysis
// began, 42 s of data" for a check that counts every request since the
// analysis start, or "" when it names no window (custom checks).
func FormatWindow(since, at time.Time) string {
	if since.IsZero() {
		return ""
	}
	return "since the analysis began, " + formatSpan(max(at.Sub(since), 0)) + " of data"
}

// formatSpan rounds a span of data for people: "42 s", "3 min 5 s",
// "2 h 10 min".
func formatSpan(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 120:
		return strconv.FormatInt(s, 10) + " s"
	case s < 2*3600:
		if s%60 == 0 {
			return strconv.FormatInt(s/60, 10) + " min"
		}
		return strconv.FormatInt(s/60, 10) + " min " + strconv.FormatInt(s%60, 10) + " s"
	}
	return strconv.FormatInt(s/3600, 10) + " h " + strconv.FormatInt(s%3600/60, 10) + " min"
}

// Summary says a check's result once, in plain text, from its fields, as
// every surface that lists failures shows it (notifications, Kubernetes
// Events): its check, hop, source and window, the canary's value with its
// interval, stable's, the limit and how far over it the canary is, and the
// evidence. at is when it was judged (the window's end). For example
// "error-rate on checkout → payments from traces, since the analysis
// began, 42 s of data: canary 5.2% [3.1–8.4%] vs stable 0.1%, limit 1%
// (×5.2 the limit); evidence 1/α reached at 2.4 s".
func (c CheckResult) Summary(at time.Time) string {
	var b strings.Builder
	if c.Kind == KindCustom {
		b.WriteString(c.Check + " (custom query) from " + SourceName(c.Source))
	} else {
		b.WriteString(c.Check + " on " + HopName(c.Hop) + " from " + SourceName(c.Source))
	}
	if w := FormatWindow(c.Since, at); w != "" {
		b.WriteString(", " + w)
	}
	if c.Kind == KindCustom {
		b.WriteString(": " + FormatValue(c.Canary, c.Unit) + ", threshold " + FormatValue(c.Limit, c.Unit))
		return b.String()
	}
	b.WriteString(": canary " + FormatWithInterval(c.Canary, c.CanaryLow, c.CanaryHigh, c.Unit))
	if c.Stable == 0 && c.StableRequests == 0 {
		b.WriteString(" vs stable n/a (no stable traffic)")
	} else {
		b.WriteString(" vs stable " + FormatWithInterval(c.Stable, c.StableLow, c.StableHigh, c.Unit))
	}
	b.WriteString(", limit " + FormatValue(c.Limit, c.Unit))
	if x := FormatTimesLimit(c); x != "" {
		b.WriteString(" (" + x + ")")
	}
	if e := FormatEvidence(c.Evidence, c.Threshold, c.EvidenceAtSeconds); e != "" {
		b.WriteString("; " + e)
	}
	return b.String()
}
