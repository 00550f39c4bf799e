package rollout

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestSummaryOf(t *testing.T) {
	running := func(f func(*v1alpha1.RolloutStatus)) v1alpha1.RolloutStatus {
		st := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, CanaryWeight: 25, AppliedWeight: 25,
			WeightConfirmedAt: ptrTime(t0)}
		st.Analysis.LastVerdict = "Pass"
		st.Analysis.Checks = []v1alpha1.CheckStatus{{Check: "error-rate", Verdict: "Pass"}, {Check: "latency-p99", Verdict: "Pass"},
			{Check: "queue", Verdict: "Fail", DryRun: true}}
		if f != nil {
			f(&st)
		}
		return st
	}
	confirmed := metav1.NewMicroTime(t0)
	for _, tc := range []struct {
		name string
		st   v1alpha1.RolloutStatus
		want string
	}{
		{"new", v1alpha1.RolloutStatus{}, "waiting to start"},
		{"passing", running(nil), "25% on the route · 2/2 checks pass"},
		{"setting the weight", running(func(s *v1alpha1.RolloutStatus) { s.AppliedWeight = 10 }), "setting 25% · 2/2 checks pass"},
		{"written, not read back", running(func(s *v1alpha1.RolloutStatus) { s.WeightConfirmedAt = nil }), "25% written, confirming · 2/2 checks pass"},
		{"not on the proxies", running(func(s *v1alpha1.RolloutStatus) { s.DataPlane = &v1alpha1.DataPlaneStatus{Weight: 25} }),
			"25% on the route, not yet on the proxies · 2/2 checks pass"},
		{"on the proxies", running(func(s *v1alpha1.RolloutStatus) {
			s.DataPlane = &v1alpha1.DataPlaneStatus{Weight: 25, ConfirmedAt: &confirmed}
		}), "25% on the proxies · 2/2 checks pass"},
		{"gathering", running(func(s *v1alpha1.RolloutStatus) {
			s.Analysis.LastVerdict, s.Analysis.Checks[1].Verdict = "Inconclusive", "Inconclusive"
		}), "25% on the route · gathering evidence, 1/2 checks pass"},
		{"no data", running(func(s *v1alpha1.RolloutStatus) {
			s.Analysis.LastVerdict, s.Analysis.InconclusiveSince = "Inconclusive", ptrTime(t0)
		}), "25% on the route · no data"},
		{"paused", running(func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.Message = v1alpha1.PhasePaused, "paused by request; the weight is held until spec.paused is false"
		}), "paused by request · 25% on the route"},
		{"rolled back by a hop", running(func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.CanaryWeight, s.AppliedWeight = v1alpha1.PhaseRolledBack, 0, 0
			s.Analysis.Checks = []v1alpha1.CheckStatus{
				{Check: "error-rate", Kind: "error-rate", Hop: "checkout → payments", Verdict: "Fail", Canary: 15.6, Limit: 1, Unit: "%"},
				{Check: "latency-p99", Kind: "latency-p99", Verdict: "Fail", Canary: 900, Limit: 500, Unit: "ms"}}
		}), "rolled back: error-rate on checkout → payments ×15.6 the limit (+1 more)"},
		{"rolled back without data", running(func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.CanaryWeight, s.AppliedWeight, s.Message = v1alpha1.PhaseRolledBack, 0, 0, "rolled back: analysis inconclusive with no data for 1m0s; traffic returned to stable (100/0)"
			s.Analysis.Checks = nil
		}), "rolled back: analysis inconclusive with no data for 1m0s"},
		{"aborted", running(func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.CanaryWeight, s.AppliedWeight, s.Message = v1alpha1.PhaseAborted, 0, 0, "aborted by alice: bad build; traffic returned to stable (100/0)"
		}), "aborted by alice: bad build"},
		{"succeeded", running(func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.CanaryWeight, s.AppliedWeight = v1alpha1.PhaseSucceeded, 100, 100
		}), "promoted to 100%"},
		{"succeeded, the weight not yet set", running(func(s *v1alpha1.RolloutStatus) { s.Phase, s.CanaryWeight = v1alpha1.PhaseSucceeded, 100 }),
			"promoted to 100% · setting 100%"},
		{"rolled back, not yet on the proxies", running(func(s *v1alpha1.RolloutStatus) {
			s.Phase, s.CanaryWeight, s.AppliedWeight, s.Message = v1alpha1.PhaseRolledBack, 0, 0, "rolled back: the window closed; traffic returned to stable (100/0)"
			s.Analysis.Checks, s.DataPlane = nil, &v1alpha1.DataPlaneStatus{Weight: 0}
		}), "rolled back: the window closed · 0% on the route, not yet on the proxies"},
	} {
		if got := SummaryOf(tc.st); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// The summary reads no figure that changes on every tick: a tick that
	// is not written leaves it as it was.
	st := running(nil)
	next := *st.DeepCopy()
	next.Analysis.LastTickAt, next.Analysis.PassedTicks = ptrTime(t0), 9
	next.Analysis.Checks[0].Canary, next.Analysis.Checks[0].Evidence = 0.4, 3
	if worthWriting(st, next) || SummaryOf(st) != SummaryOf(next) {
		t.Errorf("new figures changed the summary: %q -> %q", SummaryOf(st), SummaryOf(next))
	}
}
