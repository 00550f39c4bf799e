package rollout

import (
	"context"
	"math"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Work-queue priorities. When more rollouts are due than there are
// workers, a canary that may be failing is reconciled first, so that its
// rollback never waits behind healthy rollouts' ticks. After a restart the
// informer's initial list would put every rollout at the same low
// priority, in no useful order; a suspect one is lifted above the rest.
const (
	// PriorityUrgent is a rollout whose canary may be failing, or whose
	// rollback is not yet on the route.
	PriorityUrgent = 100
	// PriorityNormal is a rollout ticking along.
	PriorityNormal = 0
	// PriorityInitial is a healthy rollout seen in the initial list after
	// a restart: controller-runtime's low priority.
	PriorityInitial = handler.LowPriority
)

// Urgent reports whether a rollout's status shows a canary that may be
// failing: its latest verdict is not a pass, a failure was seen and not
// yet cleared, a check's evidence is more than half-way to rejection (in
// log scale: past √(1/α)), or it was rolled back and the route still
// carries canary traffic.
func Urgent(st v1alpha1.RolloutStatus) bool {
	if st.Phase.Terminal() {
		return st.Phase == v1alpha1.PhaseRolledBack && st.AppliedWeight != 0
	}
	a := st.Analysis
	if a.FirstFailureAt != nil || a.LastVerdict == string(analysis.Fail) || a.LastVerdict == string(analysis.Inconclusive) {
		return true
	}
	for _, c := range a.Checks {
		if c.DryRun {
			continue
		}
		if c.Verdict == string(analysis.Fail) || (c.Threshold > 1 && c.Evidence >= math.Sqrt(c.Threshold)) {
			return true
		}
	}
	return false
}

// priorityOf is the queue priority of a rollout with status st.
func priorityOf(st v1alpha1.RolloutStatus) int {
	if Urgent(st) {
		return PriorityUrgent
	}
	return PriorityNormal
}

// rolloutHandler enqueues Rollouts as controller-runtime's
// EnqueueRequestForObject does, with priorities: urgent ones always at
// PriorityUrgent, others from the initial list at PriorityInitial.
type rolloutHandler struct{}

var _ handler.TypedEventHandler[*v1alpha1.Rollout, reconcile.Request] = rolloutHandler{}

type rolloutQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// add enqueues ro at priority, or plainly when the queue has none.
func add(q rolloutQueue, ro *v1alpha1.Rollout, priority int) {
	addRequest(q, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}}, priority)
}

// addRequest enqueues req at priority, or plainly when the queue has none.
func addRequest(q rolloutQueue, req reconcile.Request, priority int) {
	pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request])
	if !ok {
		q.Add(req)
		return
	}
	pq.AddWithOpts(priorityqueue.AddOpts{Priority: &priority}, req)
}

// Create enqueues a new or listed Rollout.
func (rolloutHandler) Create(_ context.Context, e event.TypedCreateEvent[*v1alpha1.Rollout], q rolloutQueue) {
	p := priorityOf(e.Object.Status)
	if p == PriorityNormal && e.IsInInitialList {
		p = PriorityInitial
	}
	add(q, e.Object, p)
}

// Update enqueues a changed Rollout (the predicates decide which changes).
func (rolloutHandler) Update(_ context.Context, e event.TypedUpdateEvent[*v1alpha1.Rollout], q rolloutQueue) {
	add(q, e.ObjectNew, priorityOf(e.ObjectNew.Status))
}

// Delete enqueues a deleted Rollout, so that its finalizer runs.
func (rolloutHandler) Delete(_ context.Context, e event.TypedDeleteEvent[*v1alpha1.Rollout], q rolloutQueue) {
	add(q, e.Object, PriorityUrgent)
}

// Generic enqueues a Rollout on a generic event.
func (rolloutHandler) Generic(_ context.Context, e event.TypedGenericEvent[*v1alpha1.Rollout], q rolloutQueue) {
	add(q, e.Object, priorityOf(e.Object.Status))
}
