// Package legacy is the judge serin shipped before issue #9 (commit
// 21650dc): fixed-level binomial tests on windows of increase(), a 3 s
// fast window whose failures far over a limit roll back at once, and the
// decision rules of that commit's rollout.Next (two consecutive failed
// ticks, a fast failure, or 60 s inconclusive roll back). It is frozen
// here only so that test/montecarlo can compare it with the judge that
// replaced it, on the same simulated traffic. Nothing else may import it,
// and it is not to be fixed: its defects are what the comparison
// measures.
//
// It keeps only what the comparison needs: the metric checks of
// analysis/judge.go, analysis/config.go and analysis/runner.go (no custom
// checks, no traces), the p99 of analysis/prometheus/quantile.go, and a
// compact form of the progressing rules of rollout/next.go.
package legacy

import (
	"errors"
	"math"
	"time"
)

// Verdict is the outcome of one analysis tick, or of one check.
type Verdict string

// The verdicts.
const (
	Pass         Verdict = "Pass"
	Fail         Verdict = "Fail"
	Inconclusive Verdict = "Inconclusive"
	Skipped      Verdict = "Skipped"
)

// ErrNoData means a source returned nothing to judge.
var ErrNoData = errors.New("no data")

// Kind says what a measurement measures.
type Kind string

// The kinds of measurement.
const (
	KindErrorRate Kind = "error-rate"
	KindLatency   Kind = "latency-p99"
)

// Stats is one side's traffic over a window, as increase() counted it.
type Stats struct {
	Requests float64
	Errors   float64
	// P99Ms is the 99th percentile from Buckets; NaN when it cannot be
	// computed.
	P99Ms   float64
	Buckets []Bucket
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperMs float64
	Count   float64
}

// Pair is canary and stable measured the same way.
type Pair struct {
	Canary Stats
	Stable Stats
}

// ErrorRate is Errors/Requests, or NaN without requests.
func (s Stats) ErrorRate() float64 {
	if s.Requests <= 0 {
		return math.NaN()
	}
	return s.Errors / s.Requests
}

// Limit bounds one measured value of the canary: at most Max, and at most
// Factor × stable + Slack when stable has enough requests.
type Limit struct {
	Max, Factor, Slack float64
}

// Bound returns the effective limit given stable's value (NaN when stable
// has too few requests to compare with).
func (l Limit) Bound(stable float64) float64 {
	if math.IsNaN(stable) || l.Factor <= 0 {
		return l.Max
	}
	return math.Min(l.Max, l.Factor*stable+l.Slack)
}

// Config is the old judge's configuration.
type Config struct {
	Window, FastWindow time.Duration
	MinRequests        float64
	FastFailFactor     float64
	Significance       float64
	ErrorRate, Latency Limit
	Hops               bool
	HopErrorRate       Limit
	HopLatency         Limit
}

// DefaultConfig is the old default: a 30 s window and a 3 s fast window,
// 20 requests, a fast failure at 5 × the absolute limit, p < 0.01; error
// rate at most 1% and stable + 0.5 pp; p99 at most 500 ms and 1.2 ×
// stable + 10 ms; the same per hop.
func DefaultConfig() Config {
	errRate := Limit{Max: 0.01, Factor: 1, Slack: 0.005}
	latency := Limit{Max: 500, Factor: 1.2, Slack: 10}
	return Config{
		Window: 30 * time.Second, FastWindow: 3 * time.Second,
		MinRequests: 20, FastFailFactor: 5, Significance: 0.01,
		ErrorRate: errRate, Latency: latency,
		Hops: true, HopErrorRate: errRate, HopLatency: latency,
	}
}

// Measurement is one check's data for one tick.
type Measurement struct {
	Check string
	Kind  Kind
	Hop   string
	Pair  Pair
	Err   error
	Limit Limit
	// Fast marks a measurement over the fast window: it only ever acts
	// as a fast failure, and is Skipped otherwise.
	Fast bool
}

// CheckResult is one check's judgement.
type CheckResult struct {
	Check    string
	Kind     Kind
	Hop      string
	Verdict  Verdict
	Canary   float64
	Stable   float64
	Limit    float64
	Reason   string
	FastFail bool
}

// Result is the judgement of one tick.
type Result struct {
	Verdict Verdict
	Reason  string
	// FastFail asks for a rollback on this tick.
	FastFail bool
	Checks   []CheckResult
}
