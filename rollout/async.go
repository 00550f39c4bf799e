package rollout

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// A tick's analysis runs outside the reconcile that asked for it. The
// reconcile waits for it at most analysisWait, which an analysis served
// from the shared answers (a split of an index, the judge) takes easily.
// When the data are slow to come (Prometheus computing the answer of a
// thousand services, a Jaeger search), the reconcile lets its worker go
// and decides nothing; the analysis goes on, and when it ends the rollout
// is queued again, first when the verdict is Fail, and that reconcile
// decides on it. A worker is never held by one rollout's slow analysis
// while another rollout's tick, or its rollback, waits in the queue.

// analysisWait is how long a reconcile waits for its analysis.
const analysisWait = 250 * time.Millisecond

// analyses holds the analysis under way or done but not yet used, per
// rollout, and the channel that queues a rollout again when its analysis
// ends after the reconcile let go.
type analyses struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]*analysisRun
	done chan event.TypedGenericEvent[analysed]
}

// analysisRun is one analysis of one rollout.
type analysisRun struct {
	basis analysisBasis
	ended chan struct{}
	res   analysis.Result // set before ended is closed
	// orphan is set, under analyses.mu, when the reconcile that started
	// the run stopped waiting for it: its end then queues the rollout.
	orphan bool
}

// analysisBasis is what a result is valid for: a result of another
// rollout of the same name, analysis start, weight, step or spec is
// never used.
type analysisBasis struct {
	uid        types.UID
	generation int64
	since      time.Time
	weight     int32
	step       int32
}

func basisOf(ro *v1alpha1.Rollout) analysisBasis {
	b := analysisBasis{uid: ro.UID, generation: ro.Generation, weight: ro.Status.CanaryWeight, step: ro.Status.CurrentStep}
	if s := ro.Status.Analysis.Since; s != nil {
		b.since = s.Time
	}
	return b
}

// analysed is the event of an analysis that ended after its reconcile
// let go.
type analysed struct {
	key    types.NamespacedName
	urgent bool // the verdict is Fail
}

func newAnalyses() *analyses {
	// The buffer holds one event per rollout in a large fleet; past it an
	// event is dropped, and the rollout's own requeue brings it back.
	return &analyses{runs: map[types.NamespacedName]*analysisRun{}, done: make(chan event.TypedGenericEvent[analysed], 4096)}
}

// source queues each rollout whose analysis ended after its reconcile let
// go: at PriorityUrgent when the verdict is Fail.
func (a *analyses) source() source.TypedSource[reconcile.Request] {
	return source.Channel(a.done, handler.TypedFuncs[analysed, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[analysed], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			p := PriorityNormal
			if e.Object.urgent {
				p = PriorityUrgent
			}
			addRequest(q, reconcile.Request{NamespacedName: e.Object.key}, p)
		},
	})
}

// result returns the rollout's analysis for this tick: the one under way
// or done for the same basis, else a new one started with run. ok is
// false when it has not ended within analysisWait (or ctx ended first):
// nothing is to be decided now, and the rollout is queued again when it
// ends.
func (a *analyses) result(ctx context.Context, ro *v1alpha1.Rollout, run func(context.Context) analysis.Result) (res analysis.Result, ok bool) {
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	basis := basisOf(ro)
	a.mu.Lock()
	r := a.runs[key]
	if r == nil || r.basis != basis {
		// None, or one for what the rollout no longer is: it is left to
		// end unused.
		r = &analysisRun{basis: basis, ended: make(chan struct{})}
		a.runs[key] = r
		go a.run(context.WithoutCancel(ctx), key, r, run)
	}
	r.orphan = false
	a.mu.Unlock()
	timer := time.NewTimer(analysisWait)
	defer timer.Stop()
	select {
	case <-r.ended:
	case <-timer.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-r.ended:
		if a.runs[key] == r {
			delete(a.runs, key)
		}
		return r.res, true
	default:
		r.orphan = true
		return analysis.Result{}, false
	}
}

// run carries out one analysis and, when its reconcile let go, queues the
// rollout.
func (a *analyses) run(ctx context.Context, key types.NamespacedName, r *analysisRun, run func(context.Context) analysis.Result) {
	res := run(ctx)
	a.mu.Lock()
	r.res = res
	close(r.ended)
	orphan := r.orphan && a.runs[key] == r
	a.mu.Unlock()
	if !orphan {
		return
	}
	select {
	case a.done <- event.TypedGenericEvent[analysed]{Object: analysed{key: key, urgent: res.Verdict == analysis.Fail}}:
	default:
	}
}

// forget drops a deleted rollout's analysis.
func (a *analyses) forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.runs, key)
}
