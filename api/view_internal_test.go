package api

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// TestViewShowsTheReleases: the releases come newest first with their
// images said one way and their durations; the running one says so, and
// so does one whose end is still being carried out; the workload's state
// is said in words.
func TestViewShowsTheReleases(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) metav1.Time { return metav1.Time{Time: t0.Add(d)} }
	atp := func(d time.Duration) *metav1.Time { m := at(d); return &m }
	r := &v1alpha1.Rollout{}
	r.Namespace, r.Name = "shop", "checkout"
	if v := view(r); v.Workload != nil || v.Releases != nil {
		t.Errorf("a rollout without a workload shows %+v and %+v", v.Workload, v.Releases)
	}
	r.Spec.VirtualService, r.Spec.Workload = "checkout", &v1alpha1.WorkloadRef{Deployment: "checkout"}
	if got := view(r).Target; got != "checkout: deployment checkout (stable → canary)" {
		t.Errorf("target %q", got)
	}
	if w := view(r).Workload; w == nil || w.State != "adopting" || w.Adopted || w.StableCopy != "checkout-stable" {
		t.Errorf("before adoption: %+v", w)
	}
	r.Status.Phase = v1alpha1.PhaseProgressing
	r.Status.Workload = &v1alpha1.WorkloadStatus{AdoptedAt: atp(0), Replicas: 3, StableRevision: "aaa", Release: "ccc"}
	r.Status.Releases = []v1alpha1.Release{
		{Revision: "bbb", Images: map[string]string{"checkout": "shop/checkout:2.0", "log": "fluent:3"}, StartedAt: at(time.Minute),
			FinishedAt: atp(5*time.Minute + 10*time.Second), Outcome: "RolledBack", Reason: "error-rate failed", WorstCheck: "error-rate (prometheus) Fail"},
		{Revision: "ccc", Images: map[string]string{"checkout": "shop/checkout:2.1"}, StartedAt: at(time.Hour)},
	}
	v := view(r)
	if w := v.Workload; w == nil || !w.Adopted || w.Replicas != 3 || w.Releasing != "ccc" || w.State != "releasing revision ccc" {
		t.Errorf("workload %+v", w)
	}
	if len(v.Releases) != 2 {
		t.Fatalf("releases %+v", v.Releases)
	}
	if got := v.Releases[0]; got.Revision != "ccc" || !got.Running || got.Outcome != "Running" || got.Duration != "" || got.EndedAt != nil {
		t.Errorf("newest release %+v, want ccc running", got)
	}
	if got := v.Releases[1]; got.Revision != "bbb" || got.Running || got.Outcome != "RolledBack" || got.Duration != "4m10s" ||
		got.Images != "checkout=shop/checkout:2.0, log=fluent:3" || got.WorstCheck == "" || got.Stable {
		t.Errorf("older release %+v", got)
	}

	r.Status.Phase = v1alpha1.PhaseSucceeded
	if got := view(r).Releases[0].Outcome; got != "Succeeded, finishing" {
		t.Errorf("a succeeded release being carried out: %q", got)
	}
	r.Status.Workload.Done, r.Status.Workload.StableRevision = true, "ccc"
	r.Status.Releases[1].Outcome, r.Status.Releases[1].FinishedAt = "Succeeded", atp(3*time.Hour+5*time.Minute)
	v = view(r)
	if w := v.Workload; w.Releasing != "" || w.State != "stable at revision ccc, waiting for a change of the template" {
		t.Errorf("idle workload %+v", w)
	}
	if got := v.Releases[0]; got.Running || !got.Stable || got.Duration != "2h05m" {
		t.Errorf("the release now stable: %+v", got)
	}
}

// TestViewSaysWhatIsOpenAndWhatIsDue: the operations follow the phase, and
// a progressing rollout carries the times of its countdowns, named as
// every surface names steps.
func TestViewSaysWhatIsOpenAndWhatIsDue(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := &v1alpha1.Rollout{}
	r.Spec.Steps = []int32{10, 25, 50, 100}
	r.Spec.StepInterval = &metav1.Duration{Duration: 30 * time.Second}
	r.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, CanaryWeight: 25,
		StepStartedAt: &metav1.Time{Time: t0}}
	v := view(r)
	if got := fmt.Sprint(v.Operations); got != "[pause promote abort]" {
		t.Errorf("operations of a progressing rollout: %s", got)
	}
	if v.Due == nil || v.Due.NextStepAt == nil || !v.Due.NextStepAt.Equal(t0.Add(30*time.Second)) || v.Due.NextStep != "step 3/4 (50%)" {
		t.Fatalf("due: %+v, want step 3/4 (50%%) at %v", v.Due, t0.Add(30*time.Second))
	}
	if v.Due.NoDataAt != nil {
		t.Errorf("no-data deadline for an analysis with data: %v", v.Due.NoDataAt)
	}
	r.Status.CurrentStep, r.Status.CanaryWeight = 2, 50
	r.Status.Analysis.InconclusiveSince = &metav1.Time{Time: t0.Add(5 * time.Second)}
	v = view(r)
	if v.Due.NextStep != "100%" || v.Due.NoDataAt == nil || !v.Due.NoDataAt.Equal(t0.Add(65*time.Second)) || v.Due.NoDataAction != "rollback" {
		t.Errorf("due before the last step, without data: %+v", v.Due)
	}
	r.Status.Phase = v1alpha1.PhaseRolledBack
	v = view(r)
	if got := fmt.Sprint(v.Operations); got != "[retry]" || v.Due != nil {
		t.Errorf("a rolled-back rollout: operations %s, due %+v", got, v.Due)
	}
	r.Status.Phase = v1alpha1.PhaseSucceeded
	if v = view(r); len(v.Operations) != 0 {
		t.Errorf("a succeeded rollout offers %v", v.Operations)
	}
}

// TestCheckViewSaysHowFarOverAndOverWhat: a failing check carries how far
// over its limit it is and the window it counted, once, from its fields;
// a check without data says so.
func TestCheckViewSaysHowFarOverAndOverWhat(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := &v1alpha1.Rollout{}
	r.Status.Analysis.LastTickAt = &metav1.Time{Time: t0.Add(42 * time.Second)}
	r.Status.Analysis.Checks = []v1alpha1.CheckStatus{
		{Check: "error-rate", Kind: "error-rate", Hop: "checkout → payments", Source: "prometheus", Verdict: "Fail",
			Canary: 15.6, Stable: 0.1, Limit: 1, Unit: "%", Since: &metav1.Time{Time: t0}},
		{Check: "latency-p99", Kind: "latency-p99", Source: "jaeger", Verdict: "Inconclusive", Unit: "ms", NoData: true},
		{Check: "queue", Kind: "custom", Source: "prometheus", Verdict: "Fail", Canary: 9, Limit: 3},
	}
	cs := view(r).Checks
	if cs[0].TimesLimit != "×15.6 the limit" || cs[0].Window != "since the analysis began, 42 s of data" || cs[0].NoData {
		t.Errorf("the failing hop: %+v", cs[0])
	}
	if cs[1].Check != "queue" || cs[1].TimesLimit != "" || cs[1].Window != "" {
		t.Errorf("a custom check has no limit ratio nor window of serin's: %+v", cs[1])
	}
	if !cs[2].NoData || cs[2].TimesLimit != "" {
		t.Errorf("a check without data: %+v", cs[2])
	}
}
