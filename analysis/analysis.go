// Package analysis measures a canary against its stable version and judges
// the difference. It knows nothing of the rollout engine: it takes a
// Request and returns a Result.
package analysis

import (
	"context"
	"errors"
	"time"
)

// Verdict is the outcome of one analysis tick.
type Verdict string

// The three verdicts. There is no fourth: a measurement that could not be
// taken is Inconclusive, never Pass.
const (
	Pass         Verdict = "Pass"
	Fail         Verdict = "Fail"
	Inconclusive Verdict = "Inconclusive"
)

// ErrNoData means a provider returned nothing to judge: a query error, a
// timeout, an empty result or too few samples.
var ErrNoData = errors.New("no data")

// Request asks for one tick of analysis of one rollout.
type Request struct {
	// Namespace and Name identify the rollout.
	Namespace string
	Name      string
	// Target is the service whose canary is analysed.
	Target Target
	// Config holds the checks and their limits.
	Config Config
	// Vars are the variables of custom check queries, e.g. Namespace,
	// Service, CanaryVersion.
	Vars map[string]string
	// Now is the time of the tick.
	Now time.Time
}

// Result is the judgement of one tick.
type Result struct {
	Verdict Verdict
	// Reason says why, in plain words: which check, which hop, which values.
	Reason string
	// FastFail asks for a rollback on this tick, without waiting for the
	// failure threshold.
	FastFail bool
	// Checks are the individual checks' results, in a stable order.
	Checks []CheckResult
}

// AlwaysPass is a placeholder Analyzer that passes every tick without
// measuring anything. It exists so that the engine can run before real
// providers are configured; never use it to judge a real canary.
type AlwaysPass struct{}

// Analyze returns Pass.
func (AlwaysPass) Analyze(context.Context, Request) (Result, error) {
	return Result{Verdict: Pass, Reason: "no analysis configured (AlwaysPass placeholder)"}, nil
}
