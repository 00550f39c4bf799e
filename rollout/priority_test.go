package rollout

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestUrgent(t *testing.T) {
	now := metav1.NewTime(time.Unix(1e9, 0))
	progressing := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CanaryWeight: 10, AppliedWeight: 10}
	with := func(f func(*v1alpha1.RolloutStatus)) v1alpha1.RolloutStatus {
		st := *progressing.DeepCopy()
		f(&st)
		return st
	}
	check := func(verdict string, evidence, threshold float64, dry bool) func(*v1alpha1.RolloutStatus) {
		return func(st *v1alpha1.RolloutStatus) {
			st.Analysis.LastVerdict = "Pass"
			st.Analysis.Checks = []v1alpha1.CheckStatus{{Check: "error-rate", Verdict: verdict, Evidence: evidence, Threshold: threshold, DryRun: dry}}
		}
	}
	for _, tc := range []struct {
		name string
		st   v1alpha1.RolloutStatus
		want bool
	}{
		{"passing", with(check("Pass", 3, 400, false)), false},
		{"no verdict yet", progressing, false},
		{"last tick failed", with(func(st *v1alpha1.RolloutStatus) { st.Analysis.LastVerdict = "Fail" }), true},
		{"inconclusive", with(func(st *v1alpha1.RolloutStatus) { st.Analysis.LastVerdict = "Inconclusive" }), true},
		{"failure not cleared", with(func(st *v1alpha1.RolloutStatus) { st.Analysis.FirstFailureAt = &now }), true},
		{"evidence half-way (log scale)", with(check("Pass", 20, 400, false)), true},
		{"evidence of a dry-run check", with(check("Fail", 1000, 400, true)), false},
		{"rolled back, route not back yet", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, AppliedWeight: 25}, true},
		{"rolled back, route back", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack}, false},
		{"succeeded", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseSucceeded, AppliedWeight: 100}, false},
	} {
		if got := Urgent(tc.st); got != tc.want {
			t.Errorf("%s: Urgent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSuspectRolloutsAreReconciledFirst: in controller-runtime's priority
// queue, fed by rolloutHandler as after a restart (every Rollout in the
// initial list) and in steady state, a suspect canary comes out before
// every healthy rollout that was queued before it.
func TestSuspectRolloutsAreReconciledFirst(t *testing.T) {
	for _, initial := range []bool{true, false} {
		t.Run(fmt.Sprintf("initial list %v", initial), func(t *testing.T) {
			q := priorityqueue.New[reconcile.Request]("test")
			defer q.ShutDown()
			h := rolloutHandler{}
			healthy := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Pass"}}
			for i := range 50 {
				ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("healthy-%02d", i)}, Status: healthy}
				h.Create(t.Context(), event.TypedCreateEvent[*v1alpha1.Rollout]{Object: ro, IsInInitialList: initial}, q)
			}
			suspect := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "suspect"},
				Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Fail"}}}
			h.Create(t.Context(), event.TypedCreateEvent[*v1alpha1.Rollout]{Object: suspect, IsInInitialList: initial}, q)
			req, prio, _ := q.GetWithPriority()
			if req.Name != "suspect" || prio != PriorityUrgent {
				t.Fatalf("first out: %s at priority %d, want suspect at %d", req.Name, prio, PriorityUrgent)
			}
			_, prio, _ = q.GetWithPriority()
			if want := map[bool]int{true: PriorityInitial, false: PriorityNormal}[initial]; prio != want {
				t.Errorf("a healthy rollout came out at priority %d, want %d", prio, want)
			}
		})
	}
}
