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
