package rollout

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func asyncRollout() *v1alpha1.Rollout {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", UID: "u1", Generation: 1}}
	ro.Status.CanaryWeight, ro.Status.CurrentStep = 10, 0
	return ro
}

// TestAnalysisFastIsUsedAtOnce: an analysis that ends within the wait is
// the reconcile's own, and queues nothing.
func TestAnalysisFastIsUsedAtOnce(t *testing.T) {
	a := newAnalyses()
	res, ok := a.result(t.Context(), asyncRollout(), func(context.Context) analysis.Result {
		return analysis.Result{Verdict: analysis.Pass}
	})
	if !ok || res.Verdict != analysis.Pass {
		t.Fatalf("result = %v, %v; want Pass at once", res.Verdict, ok)
	}
	if len(a.done) != 0 || len(a.runs) != 0 {
		t.Errorf("%d events queued, %d runs kept; want none", len(a.done), len(a.runs))
	}
}

// TestAnalysisSlowLetsTheWorkerGo: a slow analysis lets its reconcile go
// without a result; its end queues the rollout (urgently for Fail), and
// the next reconcile takes its result without starting another.
func TestAnalysisSlowLetsTheWorkerGo(t *testing.T) {
	a := newAnalyses()
	ro := asyncRollout()
	release := make(chan struct{})
	var runs atomic.Int32
	slow := func(context.Context) analysis.Result {
		runs.Add(1)
		<-release
		return analysis.Result{Verdict: analysis.Fail, Reason: "error-rate"}
	}
	if _, ok := a.result(t.Context(), ro, slow); ok {
		t.Fatal("a slow analysis gave its reconcile a result")
	}
	close(release)
	select {
	case ev := <-a.done:
		if ev.Object.key.Name != "checkout" || !ev.Object.urgent {
			t.Errorf("event %+v, want checkout, urgent", ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the analysis queued nothing")
	}
	res, ok := a.result(t.Context(), ro, slow)
	if !ok || res.Verdict != analysis.Fail || runs.Load() != 1 {
		t.Errorf("next reconcile: %v, %v after %d runs; want the Fail of the one run", res.Verdict, ok, runs.Load())
	}
}

// TestAnalysisOfAnotherBasisIsNotUsed: a result computed before the
// weight changed is never used for the new weight.
func TestAnalysisOfAnotherBasisIsNotUsed(t *testing.T) {
	a := newAnalyses()
	ro := asyncRollout()
	release := make(chan struct{})
	if _, ok := a.result(t.Context(), ro, func(context.Context) analysis.Result {
		<-release
		return analysis.Result{Verdict: analysis.Pass, Reason: "old weight"}
	}); ok {
		t.Fatal("a slow analysis gave its reconcile a result")
	}
	ro.Status.CanaryWeight, ro.Status.CurrentStep = 25, 1
	res, ok := a.result(t.Context(), ro, func(context.Context) analysis.Result {
		return analysis.Result{Verdict: analysis.Inconclusive, Reason: "new weight"}
	})
	close(release)
	if !ok || res.Reason != "new weight" {
		t.Errorf("result %q, %v; want the new weight's own analysis", res.Reason, ok)
	}
	time.Sleep(50 * time.Millisecond) // the old run ends: it queues nothing
	if len(a.done) != 0 {
		t.Errorf("the superseded analysis queued the rollout")
	}
}
