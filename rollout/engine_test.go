package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestRollbackEventCarriesWhyAndHowLong(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2"}}
	ro.Spec.Notifications = &v1alpha1.Notifications{Channels: []string{"oncall"}, Runbook: "https://wiki.example.com/checkout"}
	ro.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, CurrentStep: 1, Message: "rolled back",
		Analysis: v1alpha1.AnalysisStatus{
			FirstFailureAt: ptrTime(t0.Add(10 * time.Second)),
			History: []v1alpha1.AnalysisTick{
				{Time: metav1.NewTime(t0), Verdict: "Pass"},
				{Time: metav1.NewTime(t0.Add(8 * time.Second)), Verdict: "Pass"},
				{Time: metav1.NewTime(t0.Add(10 * time.Second)), Verdict: "Fail"},
			},
			Checks: []v1alpha1.CheckStatus{
				{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail", Canary: 840, Stable: 95, Limit: 124, Unit: "ms", TraceID: "abc"},
				{Check: "error-rate", Source: "prometheus", Verdict: "Pass"},
				{Check: "latency-p99", Source: "prometheus", Verdict: "Fail", DryRun: true},
			},
		}}
	ev := rollbackEvent(ro, t0.Add(11*time.Second), 25)
	if ev.Weight != 25 || len(ev.Checks) != 1 || ev.Checks[0].Hop != "checkout → payments" || ev.Checks[0].TraceID != "abc" {
		t.Fatalf("event %+v: want weight 25 and the one acting failed check with its trace", ev)
	}
	if got := ev.DetectedAt.Sub(ev.LastPassAt); got != 2*time.Second {
		t.Errorf("detected within %v of the last pass, want 2s", got)
	}
	if got := ev.CompletedAt.Sub(ev.DetectedAt); got != time.Second {
		t.Errorf("rolled back in %v, want 1s", got)
	}
	if len(ev.Channels) != 1 || ev.Channels[0] != "oncall" {
		t.Errorf("channels %v, want the rollout's", ev.Channels)
	}
	if ev.Runbook != "https://wiki.example.com/checkout" {
		t.Errorf("runbook %q, want the rollout's", ev.Runbook)
	}
}

func TestRollbackEventOfACanaryBadFromTheStart(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bad"}}
	ro.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, StepStartedAt: ptrTime(t0),
		Analysis: v1alpha1.AnalysisStatus{FirstFailureAt: ptrTime(t0.Add(3 * time.Second)),
			History: []v1alpha1.AnalysisTick{{Time: metav1.NewTime(t0.Add(3 * time.Second)), Verdict: "Fail"}}}}
	ev := rollbackEvent(ro, t0.Add(4*time.Second), 10)
	if got := ev.DetectedAt.Sub(ev.LastPassAt); got != 3*time.Second {
		t.Errorf("detected within %v of the step's start, want 3s", got)
	}
}

func TestSinceTick(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		after, took, want time.Duration
	}{
		{time.Second, 150 * time.Millisecond, 850 * time.Millisecond},
		{time.Second, 0, time.Second},
		{time.Second, 2 * time.Second, time.Millisecond}, // overdue: run now
		{0, 150 * time.Millisecond, 0},                   // no tick due
	} {
		if got := sinceTick(tc.after, start, start.Add(tc.took)); got != tc.want {
			t.Errorf("sinceTick(%v, took %v) = %v, want %v", tc.after, tc.took, got, tc.want)
		}
	}
}
