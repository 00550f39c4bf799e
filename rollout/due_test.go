package rollout

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestOperations(t *testing.T) {
	cases := []struct {
		phase  v1alpha1.Phase
		paused bool
		want   []Operation
	}{
		{v1alpha1.PhasePending, false, []Operation{OpPause, OpPromote, OpAbort}},
		{v1alpha1.PhaseProgressing, false, []Operation{OpPause, OpPromote, OpAbort}},
		{v1alpha1.PhaseProgressing, true, []Operation{OpResume, OpPromote, OpAbort}},
		{v1alpha1.PhasePaused, true, []Operation{OpResume, OpPromote, OpAbort}},
		{v1alpha1.PhaseRolledBack, false, []Operation{OpRetry}},
		{v1alpha1.PhaseAborted, true, []Operation{OpRetry}},
		{v1alpha1.PhaseSucceeded, false, nil},
		{v1alpha1.PhaseFailed, false, nil},
	}
	for _, tc := range cases {
		if got := Operations(tc.phase, tc.paused); !slices.Equal(got, tc.want) {
			t.Errorf("Operations(%s, paused=%v) = %v, want %v", tc.phase, tc.paused, got, tc.want)
		}
		// The rule agrees with the ones the API applies to each request.
		if slices.Contains(Operations(tc.phase, tc.paused), OpRetry) != Retryable(tc.phase) {
			t.Errorf("%s: retry offered %v, Retryable %v", tc.phase, !Retryable(tc.phase), Retryable(tc.phase))
		}
		if len(Operations(tc.phase, tc.paused)) > 0 && tc.phase.Terminal() && !Retryable(tc.phase) {
			t.Errorf("%s: operations offered on a finished rollout", tc.phase)
		}
	}
}

// DueOf agrees with Next: at NextStep a passing analysis advances, and a
// moment before it does not; at NoData the inconclusive limit acts.
func TestDueAgreesWithNext(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	spec := v1alpha1.RolloutSpec{Steps: []int32{10, 50, 100}, StepInterval: &metav1.Duration{Duration: 30 * time.Second}}
	st := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CurrentStep: 0, CanaryWeight: 10, AppliedWeight: 10, ObservedGeneration: 1,
		StepStartedAt: ptrTime(t0), WeightConfirmedAt: ptrTime(t0.Add(2 * time.Second))}
	st.Analysis.CleanSince = ptrTime(t0.Add(5 * time.Second))
	st.Analysis.PassedTicks = 3
	st.Analysis.LastVerdict = "Pass"

	due := DueOf(spec, st)
	if want := t0.Add(35 * time.Second); !due.NextStep.Equal(want) {
		t.Fatalf("NextStep = %v, want %v (the clean run's start plus the step interval)", due.NextStep, want)
	}
	if !due.NoData.IsZero() {
		t.Errorf("NoData = %v for an analysis with data", due.NoData)
	}
	pass := withResult(live(10), analysis.Pass, "all checks pass")
	if d := Next(st, spec, pass, due.NextStep.Add(-time.Second)); d.Status.CurrentStep != 0 {
		t.Errorf("advanced to step %d a second before NextStep", d.Status.CurrentStep)
	}
	if d := Next(st, spec, pass, due.NextStep); d.Status.CurrentStep != 1 {
		t.Errorf("at NextStep the step is %d, want 1", d.Status.CurrentStep)
	}

	st.Analysis.InconclusiveSince = ptrTime(t0.Add(10 * time.Second))
	due = DueOf(spec, st)
	if want := t0.Add(10*time.Second + v1alpha1.DefaultInconclusiveLimit); !due.NoData.Equal(want) || due.NoDataAction != v1alpha1.OnInconclusiveRollback {
		t.Fatalf("NoData = %v %q, want %v Rollback", due.NoData, due.NoDataAction, want)
	}
	nodata := live(10)
	nodata.Result = &analysis.Result{Verdict: analysis.Inconclusive, NoData: true, Reason: "no canary requests"}
	if d := Next(st, spec, nodata, due.NoData.Add(-time.Second)); d.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("a second before NoData the phase is %s", d.Status.Phase)
	}
	if d := Next(st, spec, nodata, due.NoData); d.Status.Phase != v1alpha1.PhaseRolledBack {
		t.Errorf("at NoData the phase is %s, want RolledBack", d.Status.Phase)
	}

	for _, p := range []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhasePaused, v1alpha1.PhaseSucceeded, v1alpha1.PhaseRolledBack} {
		st.Phase = p
		if d := DueOf(spec, st); d != (Due{}) {
			t.Errorf("%s: Due = %+v, want none", p, d)
		}
	}
}
