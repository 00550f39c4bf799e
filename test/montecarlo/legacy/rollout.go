package legacy

import "time"

// Phase is where a rollout stands.
type Phase string

// The phases the comparison needs.
const (
	Progressing Phase = "Progressing"
	RolledBack  Phase = "RolledBack"
	Succeeded   Phase = "Succeeded"
)

// Rollout is the old decision rules of rollout.Next for a progressing
// rollout, with the defaults of that commit: a failed tick counts, two in
// a row (FailureThreshold) or one fast failure roll back; 60 s
// inconclusive (InconclusiveLimit, OnInconclusive Rollback) rolls back; a
// step advances once it has dwelt StepInterval since it began or since
// its latest failure, with at least one passing tick and the latest tick
// passing.
type Rollout struct {
	Steps             []int32
	StepInterval      time.Duration
	FailureThreshold  int
	InconclusiveLimit time.Duration

	Phase  Phase
	Step   int
	Weight int32
	// Reason is the latest tick's reason, or the rollback's.
	Reason string

	stepStarted, cleanSince time.Time
	consecutive, passed     int
	last                    Verdict
	inconclusiveSince       *time.Time
}

// NewRollout returns a rollout with the old defaults, started at now at
// its first step.
func NewRollout(steps []int32, stepInterval time.Duration, now time.Time) *Rollout {
	r := &Rollout{Steps: steps, StepInterval: stepInterval, FailureThreshold: 2, InconclusiveLimit: time.Minute, Phase: Progressing}
	r.gotoStep(0, now)
	return r
}

// Tick records one analysis result at now and advances, rolls back or
// promotes as the old rules did. The new Weight is on the route at once.
func (r *Rollout) Tick(res Result, now time.Time) {
	if r.Phase != Progressing {
		return
	}
	r.last, r.Reason = res.Verdict, res.Reason
	switch res.Verdict {
	case Pass:
		r.consecutive = 0
		r.passed++
		r.inconclusiveSince = nil
	case Fail:
		r.consecutive++
		r.passed = 0
		r.cleanSince = now
		r.inconclusiveSince = nil
		if res.FastFail || r.consecutive >= r.FailureThreshold {
			r.rollback()
			return
		}
	default:
		if r.inconclusiveSince == nil {
			r.inconclusiveSince = &now
		}
		if now.Sub(*r.inconclusiveSince) >= r.InconclusiveLimit {
			r.Reason = "analysis inconclusive for 1m0s: " + res.Reason
			r.rollback()
			return
		}
	}
	r.maybeAdvance(now)
}

func (r *Rollout) rollback() {
	r.Phase, r.Weight = RolledBack, 0
}

func (r *Rollout) maybeAdvance(now time.Time) {
	start := r.stepStarted
	if r.cleanSince.After(start) {
		start = r.cleanSince
	}
	if now.Before(start.Add(r.StepInterval)) || r.passed < 1 || r.last != Pass {
		return
	}
	next := min(r.Step+1, len(r.Steps)-1)
	if r.Steps[next] == 100 {
		r.Step, r.Weight, r.Phase = next, 100, Succeeded
		return
	}
	r.gotoStep(next, now)
}

func (r *Rollout) gotoStep(i int, now time.Time) {
	r.Step, r.Weight = i, r.Steps[i]
	r.stepStarted, r.cleanSince = now, now
	r.consecutive, r.passed = 0, 0
	r.inconclusiveSince = nil
}
