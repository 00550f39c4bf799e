package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestDecisionSaysWhyItRollsBack: every way Next rolls back names its kind
// in Decision.Rollback, which the metrics count by; the message is never
// read for it. A decision that does not roll back names none.
func TestDecisionSaysWhyItRollsBack(t *testing.T) {
	later := t0.Add(11 * time.Second)
	stableSLO := &analysis.Result{Verdict: analysis.Inconclusive, StableAboveSLO: true,
		Checks: []analysis.CheckResult{{Verdict: analysis.Inconclusive, StableAboveLimit: true, Reason: "stable is also above the 1% SLO: 1.5%"}}}
	withSpec := func(f func(*v1alpha1.RolloutSpec)) v1alpha1.RolloutSpec {
		s := spec()
		f(&s)
		return s
	}
	inconclusiveSince := with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Analysis.InconclusiveSince = ptrTime(t0) })
	paused := with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhasePaused })
	for _, tc := range []struct {
		name string
		st   v1alpha1.RolloutStatus
		spec v1alpha1.RolloutSpec
		obs  Observation
		now  time.Time
		want RollbackReason
	}{
		{"analysis failed", passed(at(1, t0), 3), spec(), withResult(live(25), analysis.Fail, "error rate 3% > 1%"), later, RollbackAnalysis},
		{"analysis failed while paused", paused, withSpec(func(s *v1alpha1.RolloutSpec) { s.Paused = true }),
			withResult(live(25), analysis.Fail, "error rate 3% > 1%"), later, RollbackAnalysis},
		{"no data past the limit", inconclusiveSince, spec(), noData(withResult(live(25), analysis.Inconclusive, "Prometheus unavailable")),
			t0.Add(60 * time.Second), RollbackInconclusive},
		{"stable above its SLO", passed(at(1, t0), 3),
			withSpec(func(s *v1alpha1.RolloutSpec) {
				s.Analysis = &v1alpha1.AnalysisSpec{OnStableViolation: v1alpha1.OnStableViolationRollback}
			}),
			Observation{Generation: 1, LiveWeight: 25, LiveKnown: true, Result: stableSLO}, later, RollbackStableSLO},
		{"the window closed", passed(at(1, bt(2026, 11, 24, 16, 59)), 3),
			withSpec(func(s *v1alpha1.RolloutSpec) {
				s.Schedule = &v1alpha1.Schedule{TimeZone: "Europe/Berlin", OutsideWindow: v1alpha1.OutsideWindowRollback,
					Windows: []v1alpha1.Window{{Start: "0 9 * * 1-5", Duration: metav1.Duration{Duration: 8 * time.Hour}}}}
			}),
			withResult(live(25), analysis.Pass, "ok"), bt(2026, 11, 24, 17, 0), RollbackWindow},
		{"a pass rolls nothing back", passed(at(1, t0), 3), spec(), withResult(live(25), analysis.Pass, "ok"), later, ""},
		{"an abort is no rollback", at(1, t0), spec(), Observation{Generation: 1, Abort: &Request{By: "bob"}}, later, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Next(tc.st, tc.spec, tc.obs, tc.now)
			if d.Rollback != tc.want {
				t.Errorf("Rollback = %q, want %q (%s: %s)", d.Rollback, tc.want, d.Status.Phase, d.Status.Message)
			}
			if rolledBack := d.Status.Phase == v1alpha1.PhaseRolledBack; rolledBack != (tc.want != "") {
				t.Errorf("phase %s with Rollback %q: a rollback kind goes with RolledBack and only with it", d.Status.Phase, d.Rollback)
			}
		})
	}
}
