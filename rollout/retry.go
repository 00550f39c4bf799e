package rollout

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// ErrNotRetryable is returned for a retry of a rollout that cannot be
// retried: one that is still running, has succeeded, or failed before it
// started.
var ErrNotRetryable = errors.New("only a RolledBack or Aborted rollout can be retried")

// ReasonRetried is the transition reason of a retry.
const ReasonRetried = "Retried"

// Retryable reports whether a rollout in phase p may be retried. A
// rolled-back or aborted rollout ended with its traffic back on stable and
// can run again as it was. A Succeeded one has promoted its canary, and a
// Failed one never started (its preflight or its schedule was refused), so
// running either again is a new rollout, not a retry.
func Retryable(p v1alpha1.Phase) bool {
	return p == v1alpha1.PhaseRolledBack || p == v1alpha1.PhaseAborted
}

// CheckRetry returns nil when a rollout in phase p may be retried, and an
// error wrapping ErrNotRetryable that names the phase otherwise.
func CheckRetry(p v1alpha1.Phase) error {
	if Retryable(p) {
		return nil
	}
	if p == "" {
		p = v1alpha1.PhasePending
	}
	return fmt.Errorf("the rollout is %s: %w", p, ErrNotRetryable)
}

// retryRequests are the annotations of a retry request.
var retryRequests = []string{v1alpha1.AnnotationRetry, v1alpha1.AnnotationRetryBy}

// replacedRequests are the requests of the attempt a retry replaces: its
// abort would otherwise end the new attempt at once, and its promote
// would send the new one to 100% unasked.
var replacedRequests = []string{
	v1alpha1.AnnotationAbort, v1alpha1.AnnotationAbortBy,
	v1alpha1.AnnotationPromote, v1alpha1.AnnotationPromoteBy,
}

// retry decides a retry request. Whatever the phase, the request is
// consumed: a request left behind on a running rollout would otherwise
// retry it the moment it next rolls back.
func (d *decider) retry() {
	switch {
	case Retryable(d.st.Phase):
		d.restart()
	case d.st.Phase == v1alpha1.PhasePending && d.lastReason() == ReasonRetried:
		// Already restarted: the write that removes the request was lost
		// (a crash or a conflict in between). Only the retry request is
		// removed; an abort that is still there may be a person's, made
		// since, and goes through on the next tick.
		d.unannotate = retryRequests
	default:
		d.unannotate = retryRequests
		d.events = append(d.events, d.event(EventWarning, fmt.Sprintf(
			"a retry%s was ignored: %v", byWhom(d.obs.Retry.By), CheckRetry(d.old.Phase))))
	}
}

// restart sends a rolled-back or aborted rollout back to Pending before
// its first step: the engine then runs a fresh preflight (the mesh, 100/0
// on the route, one rollout per route) as for a new rollout, and the new
// attempt's analysis starts from its own first step, with none of the old
// attempt's evidence, verdicts or failure times. The history is kept, with
// a transition that names who retried.
func (d *decider) restart() {
	if d.st.CanaryWeight != 0 || d.st.AppliedWeight != 0 {
		// The return to 100/0 is not confirmed on the route yet; the
		// engine completes it first, and the preflight needs it.
		return
	}
	from := d.st.Phase
	d.st = v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePending, CurrentStep: -1, History: d.st.History}
	msg := fmt.Sprintf("retried%s after %s; starting again from the first step after a fresh preflight", byWhom(d.obs.Retry.By), from)
	d.transition(v1alpha1.PhasePending, ReasonRetried, msg, EventRetried)
	d.actedBy(d.obs.Retry.By)
	d.setCondition(CondProgressing, metav1.ConditionUnknown, ReasonRetried, msg)
	d.unannotate = append(append([]string(nil), retryRequests...), replacedRequests...)
}

// lastReason is the reason of the latest transition, or "".
func (d *decider) lastReason() string {
	if n := len(d.st.History); n > 0 {
		return d.st.History[n-1].Reason
	}
	return ""
}

// byWhom is " by NAME", or "" when the request names nobody (a hand-made
// annotation without its -by).
func byWhom(by string) string {
	if by == "" {
		return ""
	}
	return " by " + by
}
