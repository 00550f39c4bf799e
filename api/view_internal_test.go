package api

import (
	"testing"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestViewShowsTheStatusAsPeopleReadIt: the step is numbered one way, and
// the checks come failures first, with their source by what it reads and
// the canary's own traffic named.
func TestViewShowsTheStatusAsPeopleReadIt(t *testing.T) {
	r := &v1alpha1.Rollout{}
	r.Spec.Steps = []int32{10, 25, 50, 100}
	for _, tc := range []struct {
		phase v1alpha1.Phase
		step  int32
		want  string
	}{
		{"", 0, "step 0/4"}, // a new rollout's status still holds index 0
		{v1alpha1.PhasePending, -1, "step 0/4"},
		{v1alpha1.PhaseProgressing, 0, "step 1/4 (10%)"},
		{v1alpha1.PhaseProgressing, 1, "step 2/4 (25%)"},
		{v1alpha1.PhaseRolledBack, 1, "step 2/4 (25%)"}, // the step it reached
		{v1alpha1.PhaseSucceeded, 3, "step 4/4 (100%)"},
	} {
		r.Status.Phase, r.Status.CurrentStep = tc.phase, tc.step
		if got := view(r).Step; got != tc.want {
			t.Errorf("%q at step %d: %q, want %q", tc.phase, tc.step, got, tc.want)
		}
	}
	if got := view(&v1alpha1.Rollout{}).Phase; got != v1alpha1.PhasePending {
		t.Errorf("phase before the controller writes one: %q, want Pending", got)
	}

	r.Status.Analysis.Checks = []v1alpha1.CheckStatus{
		{Check: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.5, Stable: 0.25, Limit: 1, Unit: "%"},
		{Check: "latency-p99", Source: "prometheus", Verdict: "Fail", DryRun: true},
		{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail", Canary: 840, Stable: 95, Limit: 124, Unit: "ms"},
	}
	cs := view(r).Checks
	if len(cs) != 3 {
		t.Fatalf("%d checks, want 3", len(cs))
	}
	if c := cs[0]; !c.Failing || c.Hop != "checkout → payments" || c.Source != "traces" || c.Limit != "124 ms" || c.Canary != "840 ms" {
		t.Errorf("first check %+v, want the failing hop from traces with its values", c)
	}
	if c := cs[1]; c.Failing || c.Hop != "inbound" || c.Source != "metrics" || c.Verdict != "Pass" {
		t.Errorf("second check %+v, want the inbound error rate from metrics", c)
	}
	if c := cs[2]; c.Failing || c.Verdict != "Fail (dry run)" {
		t.Errorf("third check %+v, want the dry-run failure, which does not act", c)
	}
	if cs := view(&v1alpha1.Rollout{}).Checks; cs == nil {
		t.Error("checks are null before the first tick, want []")
	}
}
