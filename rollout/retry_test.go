package rollout

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// rolledBack is a rollout that failed its analysis at step 1 and whose
// return to 100/0 is on the route: the analysis state of that attempt is
// all there, to show that none of it survives a retry.
func rolledBack() v1alpha1.RolloutStatus {
	st := passed(at(1, t0), 2)
	st = Next(st, spec(), withResult(live(25), analysis.Fail, "error rate 3% > 1%"), t0.Add(5*time.Second)).Status
	st.AppliedWeight = 0
	return st
}

func ended(p v1alpha1.Phase) v1alpha1.RolloutStatus {
	return with(at(1, t0), func(s *v1alpha1.RolloutStatus) { s.Phase, s.CanaryWeight, s.AppliedWeight = p, 0, 0 })
}

func retryBy(by string) Observation { return Observation{Generation: 1, Retry: &Request{By: by}} }

var (
	retryKeys = []string{v1alpha1.AnnotationRetry, v1alpha1.AnnotationRetryBy}
	allKeys   = []string{v1alpha1.AnnotationRetry, v1alpha1.AnnotationRetryBy,
		v1alpha1.AnnotationAbort, v1alpha1.AnnotationAbortBy, v1alpha1.AnnotationPromote, v1alpha1.AnnotationPromoteBy}
)

func TestNextRetry(t *testing.T) {
	aborted := with(at(2, t0), func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CanaryWeight, s.AppliedWeight = v1alpha1.PhaseAborted, 0, 0
	})
	notOnRoute := with(rolledBack(), func(s *v1alpha1.RolloutStatus) { s.AppliedWeight = 25 })
	spent := Next(rolledBack(), spec(), retryBy("olga"), t0.Add(time.Minute)).Status
	tests := []struct {
		name       string
		st         v1alpha1.RolloutStatus
		obs        Observation
		phase      v1alpha1.Phase
		step       int32
		events     []EventKind
		msg        string // substring of status.message
		unannotate []string
	}{
		{"a rolled-back rollout goes back to before its first step", rolledBack(), retryBy("olga"),
			v1alpha1.PhasePending, -1, []EventKind{EventRetried}, "retried by olga after RolledBack", allKeys},
		{"an aborted rollout too, its abort request removed", aborted, retryBy("olga"),
			v1alpha1.PhasePending, -1, []EventKind{EventRetried}, "after Aborted", allKeys},
		{"a hand-made request names nobody", rolledBack(), retryBy(""),
			v1alpha1.PhasePending, -1, []EventKind{EventRetried}, "retried after RolledBack", allKeys},
		{"the retry waits for 100/0 on the route", notOnRoute, retryBy("olga"),
			v1alpha1.PhaseRolledBack, 1, nil, "", nil},
		{"a succeeded rollout is not retried; the request is removed", ended(v1alpha1.PhaseSucceeded), retryBy("olga"),
			v1alpha1.PhaseSucceeded, 1, []EventKind{EventWarning}, "", retryKeys},
		{"a failed rollout is not retried", ended(v1alpha1.PhaseFailed), retryBy("olga"),
			v1alpha1.PhaseFailed, 1, []EventKind{EventWarning}, "", retryKeys},
		{"a running rollout is not retried, so the request cannot fire when it ends", passed(at(1, t0), 1), retryBy("olga"),
			v1alpha1.PhaseProgressing, 1, []EventKind{EventWarning}, "", retryKeys},
		{"a request the engine failed to remove is removed, quietly", spent, retryBy("olga"),
			v1alpha1.PhasePending, -1, nil, "retried by olga", retryKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Next(tc.st, spec(), tc.obs, t0.Add(2*time.Minute))
			st := d.Status
			if st.Phase != tc.phase || st.CurrentStep != tc.step {
				t.Errorf("phase %s step %d, want %s step %d", st.Phase, st.CurrentStep, tc.phase, tc.step)
			}
			if got := kindStrings(eventKinds(d.Events)); !slices.Equal(got, kindStrings(tc.events)) {
				t.Errorf("events %v, want %v", got, tc.events)
			}
			if !strings.Contains(st.Message, tc.msg) {
				t.Errorf("message %q, want it to contain %q", st.Message, tc.msg)
			}
			if !slices.Equal(d.Unannotate, tc.unannotate) {
				t.Errorf("removes %v, want %v", d.Unannotate, tc.unannotate)
			}
			if d.Pause || d.Status.CanaryWeight != 0 && tc.phase != v1alpha1.PhaseProgressing {
				t.Errorf("pause %v weight %d: a retry decision moves no traffic", d.Pause, d.Status.CanaryWeight)
			}
		})
	}
}

func eventKinds(evs []Event) []EventKind {
	out := make([]EventKind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

// A retried rollout keeps its history and starts over: nothing of the old
// attempt's analysis, steps or conditions reaches the new one, and its
// first step comes after a fresh preflight, at the first weight.
func TestRetryStartsAFreshAttempt(t *testing.T) {
	old := rolledBack()
	retriedAt := t0.Add(time.Minute)
	d := Next(old, spec(), retryBy("olga"), retriedAt)
	st := d.Status
	if !equality.Semantic.DeepEqual(st.Analysis, v1alpha1.AnalysisStatus{}) {
		t.Errorf("analysis %+v survived the retry; want none", st.Analysis)
	}
	if st.StepStartedAt != nil || st.WeightConfirmedAt != nil || st.Target != nil || st.CanaryWeight != 0 || st.AppliedWeight != 0 {
		t.Errorf("the old attempt's step, target or weights survived: %+v", st)
	}
	if len(st.Conditions) != 1 || st.Conditions[0].Type != CondProgressing || st.Conditions[0].Status != metav1.ConditionUnknown {
		t.Errorf("conditions %+v, want only Progressing Unknown until the fresh preflight", st.Conditions)
	}
	n := len(old.History)
	if len(st.History) != n+1 || !slices.Equal(st.History[:n], old.History) {
		t.Fatalf("history %+v, want the old one and the retry", st.History)
	}
	last := st.History[n]
	if last.Reason != ReasonRetried || last.From != "RolledBack 2/4 (0%)" || last.To != "Pending" || !last.Time.Time.Equal(retriedAt) {
		t.Errorf("retry transition %+v", last)
	}
	if ev := d.Events[0]; ev.By != "olga" || ev.Kind != EventRetried {
		t.Errorf("event %+v, want Retried by olga", ev)
	}

	// The next tick has no request and a fresh preflight: step 0 at 10%.
	start := retriedAt.Add(time.Second)
	d = Next(st, spec(), Observation{Generation: 1, Preflight: &PreflightReport{}}, start)
	st = d.Status
	if st.Phase != v1alpha1.PhaseProgressing || st.CurrentStep != 0 || st.CanaryWeight != 10 {
		t.Fatalf("after the preflight: %s step %d weight %d, want Progressing step 0 at 10%%", st.Phase, st.CurrentStep, st.CanaryWeight)
	}
	if got := AnalysisStart(st, start.Add(5*time.Second)); !got.Equal(start.Truncate(time.Second)) {
		t.Errorf("the new attempt's analysis starts %v, want its own first step, %v", got, start)
	}
	// A failing preflight (another rollout holds the route) fails it.
	busy := &PreflightReport{Failures: []Finding{{Check: "Conflict", Message: "Rollout b is already in progress"}}}
	if d := Next(Next(old, spec(), retryBy(""), retriedAt).Status, spec(), Observation{Generation: 1, Preflight: busy}, start); d.Status.Phase != v1alpha1.PhaseFailed {
		t.Errorf("a retry onto a busy route: %s, want Failed by its preflight", d.Status.Phase)
	}
}

func TestCheckRetry(t *testing.T) {
	for p, ok := range map[v1alpha1.Phase]bool{
		v1alpha1.PhaseRolledBack: true, v1alpha1.PhaseAborted: true,
		"": false, v1alpha1.PhasePending: false, v1alpha1.PhaseProgressing: false, v1alpha1.PhasePaused: false,
		v1alpha1.PhaseSucceeded: false, v1alpha1.PhaseFailed: false,
	} {
		err := CheckRetry(p)
		if Retryable(p) != ok || (err == nil) != ok || (!ok && !errors.Is(err, ErrNotRetryable)) {
			t.Errorf("phase %q: Retryable %v, CheckRetry %v; want retryable %v", p, Retryable(p), err, ok)
		}
	}
}
