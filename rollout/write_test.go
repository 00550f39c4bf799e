package rollout

import (
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// A steady rollout's status is not rewritten on ticks where nothing it
// shows has changed, however long; it is when something does.
func TestWorthWriting(t *testing.T) {
	base := at(1, t0)
	base.Analysis.LastTickAt = ptrTime(t0)
	base.Analysis.LastVerdict = "Pass"
	base.Analysis.Checks = []v1alpha1.CheckStatus{{Check: "error-rate", Verdict: "Pass", Canary: 0.1, Evidence: 0.3}}
	tick := func(after time.Duration, f func(*v1alpha1.RolloutStatus)) v1alpha1.RolloutStatus {
		s := *base.DeepCopy()
		s.Analysis.LastTickAt = ptrTime(t0.Add(after))
		s.Analysis.PassedTicks++
		s.Analysis.Checks[0].Canary, s.Analysis.Checks[0].Evidence = 0.2, 0.5
		s.Analysis.LastReason = "all 4 checks passed"
		if f != nil {
			f(&s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		next v1alpha1.RolloutStatus
		want bool
	}{
		{"unchanged", base, false},
		{"new figures two seconds later", tick(2*time.Second, nil), false},
		{"new figures a minute later", tick(time.Minute, nil), false},
		{"a verdict changed", tick(2*time.Second, func(s *v1alpha1.RolloutStatus) { s.Analysis.Checks[0].Verdict = "Fail" }), true},
		{"the weight changed", tick(2*time.Second, func(s *v1alpha1.RolloutStatus) { s.CanaryWeight = 50 }), true},
		{"the message changed", tick(2*time.Second, func(s *v1alpha1.RolloutStatus) { s.Message = "holding" }), true},
		{"stable went above its SLO", tick(2*time.Second, func(s *v1alpha1.RolloutStatus) { s.Analysis.StableAboveSLO = true }), true},
		{"a check lost its data", tick(2*time.Second, func(s *v1alpha1.RolloutStatus) { s.Analysis.Checks[0].NoData = true }), true},
		{"a check's window changed", tick(2*time.Second, func(s *v1alpha1.RolloutStatus) { s.Analysis.Checks[0].Since = ptrTime(t0) }), true},
	} {
		if got := worthWriting(base, tc.next); got != tc.want {
			t.Errorf("%s: worthWriting = %v, want %v", tc.name, got, tc.want)
		}
	}
}
