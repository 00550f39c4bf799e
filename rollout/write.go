package rollout

import (
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// statusFreshness is how often a status whose only changes are the latest
// analysis figures is written anyway, so that what people read is never
// older than this.
const statusFreshness = 10 * time.Second

// worthWriting reports whether next differs from stored in anything a
// person would see (the phase, step, weights, a verdict, a message, a
// condition, a timestamp of the rollout's progress), or only in the
// latest analysis figures and those were last written more than
// statusFreshness ago. A steady rollout's status is then written about
// every statusFreshness instead of on every tick, and `kubectl get -w`
// shows each change once.
func worthWriting(stored, next v1alpha1.RolloutStatus) bool {
	if equality.Semantic.DeepEqual(stored, next) {
		return false
	}
	if !equality.Semantic.DeepEqual(shown(stored), shown(next)) {
		return true
	}
	last, now := lastShown(stored), next.Analysis.LastTickAt
	return last.IsZero() || now == nil || now.Sub(last) >= statusFreshness
}

// lastShown is when the stored status last changed for people: its latest
// analysis figures or its latest transition, whichever is later.
func lastShown(s v1alpha1.RolloutStatus) time.Time {
	var t time.Time
	if s.Analysis.LastTickAt != nil {
		t = s.Analysis.LastTickAt.Time
	}
	if n := len(s.History); n > 0 && s.History[n-1].Time.After(t) {
		t = s.History[n-1].Time.Time
	}
	return t
}

// shown is the status without the figures that change on every tick: the
// latest tick's time, reason and values, the passing-tick count (which
// every tick recomputes) and the verdict history. A check's verdict, its
// window and whether it has data at all are kept: they change rarely, and
// people read them.
func shown(s v1alpha1.RolloutStatus) v1alpha1.RolloutStatus {
	out := *s.DeepCopy()
	a := &out.Analysis
	a.LastTickAt, a.LastReason, a.History, a.PassedTicks = nil, "", nil, 0
	for i, c := range a.Checks {
		a.Checks[i] = v1alpha1.CheckStatus{Check: c.Check, Kind: c.Kind, Hop: c.Hop, Source: c.Source,
			Verdict: c.Verdict, DryRun: c.DryRun, StableAboveLimit: c.StableAboveLimit, NoData: c.NoData, Since: c.Since}
	}
	return out
}
