package rollout

import (
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Operation is something a person may ask of a rollout.
type Operation string

// The operations of the REST API, the CLI and the console.
const (
	OpPause   Operation = "pause"
	OpResume  Operation = "resume"
	OpPromote Operation = "promote"
	OpAbort   Operation = "abort"
	OpRetry   Operation = "retry"
)

// Operations are the operations open to a rollout in phase p, paused or
// not: pause or resume, promote and abort while it runs, retry once it was
// rolled back or aborted, and nothing after it succeeded or failed. The
// API refuses the others, and every surface offers only these.
func Operations(p v1alpha1.Phase, paused bool) []Operation {
	switch {
	case Retryable(p):
		return []Operation{OpRetry}
	case p.Terminal():
		return nil
	case paused:
		return []Operation{OpResume, OpPromote, OpAbort}
	}
	return []Operation{OpPause, OpPromote, OpAbort}
}

// Due is what a running rollout waits for next, as Next counts it: the
// end of the current step's dwell, and, while the analysis has no data,
// the moment the inconclusive limit acts. People see it as a countdown.
type Due struct {
	// NextStep is the earliest time the next step (or the promotion to
	// 100%) may come, if the analysis passes then; zero when the rollout
	// is not progressing at a step.
	NextStep time.Time
	// NoData is when the analysis, without data since
	// status.analysis.inconclusiveSince, ends the rollout by NoDataAction;
	// zero while there is data.
	NoData time.Time
	// NoDataAction is what happens then: v1alpha1.OnInconclusiveRollback
	// or v1alpha1.OnInconclusivePause.
	NoDataAction string
}

// DueOf computes the rollout's Due from its spec and status, by the
// rules Next applies (dwellStart and the inconclusive limit).
func DueOf(spec v1alpha1.RolloutSpec, st v1alpha1.RolloutStatus) Due {
	var d Due
	if st.Phase != v1alpha1.PhaseProgressing || st.CurrentStep < 0 {
		return d
	}
	spec = spec.Defaulted()
	if st.StepStartedAt != nil {
		d.NextStep = dwellStart(st, st.StepStartedAt.Time, st.DataPlane != nil).Add(spec.StepInterval.Duration)
	}
	if s := st.Analysis.InconclusiveSince; s != nil {
		d.NoData = s.Add(spec.Analysis.InconclusiveLimit.Duration)
		d.NoDataAction = spec.Analysis.OnInconclusive
	}
	return d
}

// dwellStart is when the current step's dwell began: the latest of start
// (the step's start), the start of the run of ticks without a failure, the
// route's confirmation of the weight and, when the controller reads the
// proxies (dataPlane), their confirmation of it.
func dwellStart(st v1alpha1.RolloutStatus, start time.Time, dataPlane bool) time.Time {
	if c := st.Analysis.CleanSince; c != nil && c.After(start) {
		start = c.Time
	}
	if c := st.WeightConfirmedAt; c != nil && c.After(start) {
		start = c.Time
	}
	if dp := st.DataPlane; dataPlane && dp != nil && dp.Weight == st.CanaryWeight && dp.ConfirmedAt != nil && dp.ConfirmedAt.After(start) {
		start = dp.ConfirmedAt.Time
	}
	return start
}
