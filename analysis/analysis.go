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
	// Start is when the rollout's analysis began: its first weight on the
	// route. Zero means it begins at Now. The sequential tests count
	// nothing from before it.
	Start time.Time
	// Shown says a result of this analysis is already in the rollout's
	// status, so its tests have been shown from Start: when the runner
	// holds no tests for it (a controller restart), it rebuilds them from
	// the counters at Start. When false, nothing of it was ever shown, and
	// a first tick that comes long after Start (a thousand rollouts
	// queued for their first step) begins the tests later instead.
	Shown bool
}

// Result is the judgement of one tick.
type Result struct {
	Verdict Verdict
	// Reason says why, in plain words: which check, which hop, which values.
	Reason string
	// NoData says an Inconclusive verdict is for want of data (a side with
	// no requests, a data source down), which the rollout's inconclusive
	// limit bounds. Otherwise an Inconclusive verdict only waits for the
	// minimum sample, with data on both sides.
	NoData bool
	// StableAboveSLO says stable itself is above an absolute limit: not
	// the canary's fault, and the rollout's policy for it applies.
	StableAboveSLO bool
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
