package rollout

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// worthWriting reports whether next differs from stored in anything a
// person would see: the phase, step, weights, a verdict, a message, a
// condition, a timestamp of the rollout's progress. A tick that changes
// only the latest analysis figures is not written: the engine keeps it in
// memory for its next tick, and the read model shows it (LiveStatus). A
// steady rollout's status is then written only when something changes for
// people, and `kubectl get -w` shows each change once.
func worthWriting(stored, next v1alpha1.RolloutStatus) bool {
	if equality.Semantic.DeepEqual(stored, next) {
		return false
	}
	return !equality.Semantic.DeepEqual(shown(stored), shown(next))
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
