package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// A weight written to the VirtualService is in effect for users only once
// the sidecars carry it. With a DataPlane (the controller's --istiod-url),
// the engine follows each written weight until every connected proxy that
// routes the service has acknowledged it, and records when
// (status.dataPlane.dataPlaneConfirmedAt, and the transition that set the
// weight). Then:
//   - a step's dwell starts when the proxies have its weight, not when the
//     VirtualService was written;
//   - a rollback is notified once the proxies have 100/0 ("traffic off the
//     canary on all 12 proxies 0.8 s after the decision"), or once the
//     bound has passed without, saying which proxies lag;
//   - proxies that do not converge within the bound, or a control plane
//     that cannot be asked, hold the rollout paused, weights unchanged;
//     it resumes by itself once the proxies have the weight again.

// DefaultDataPlaneTimeout is how long the proxies get to carry a weight
// before the rollout is held for them.
const DefaultDataPlaneTimeout = 10 * time.Second

// dataPlanePoll is how soon a rollout is looked at again while a weight
// waits for the proxies: confirmation is an in-memory lookup of what the
// DataPlane last read from istiod, so polling it costs no I/O.
const dataPlanePoll = 100 * time.Millisecond

// CondDataPlane is True when the proxies carry the weight on the route.
const CondDataPlane = "DataPlane"

// DataPlaneObservation is what the engine knows of the data plane for Next:
// present only when the engine follows the data plane.
type DataPlaneObservation struct {
	// Timeout is how long proxies get to carry a written weight.
	Timeout time.Duration
	// Unreachable says why the control plane could not be asked this
	// tick; empty when it answered.
	Unreachable string
}

// dataPlaneUpdate is the bookkeeping of one look at the data plane: the
// status's confirmation brought up to date with what was reported. It is
// pure. applied is the weight on the route; a confirmation of another
// weight starts over, from now.
func dataPlaneUpdate(dp *v1alpha1.DataPlaneStatus, applied int32, rep DataPlaneReport, err error, now time.Time) *v1alpha1.DataPlaneStatus {
	if dp == nil || dp.Weight != applied {
		dp = &v1alpha1.DataPlaneStatus{Weight: applied, WrittenAt: metav1.NewMicroTime(now)}
	} else {
		dp = dp.DeepCopy()
	}
	if err != nil {
		if dp.ConfirmedAt == nil {
			dp.Message = clip("not confirmed: "+err.Error(), 2000)
		}
		return dp
	}
	if dp.ConfirmedAt != nil {
		return dp // a confirmation stands; the proxies had it
	}
	dp.Proxies = int32(rep.Proxies)
	dp.Stragglers = rep.Stragglers
	if len(dp.Stragglers) > v1alpha1.MaxStragglers {
		dp.Stragglers = dp.Stragglers[:v1alpha1.MaxStragglers]
	}
	if rep.Confirmed() {
		dp.ConfirmedAt = ptrMicro(now)
		dp.Stragglers, dp.Message = nil, ""
		return dp
	}
	dp.Message = clip(fmt.Sprintf("%d of %d proxies do not carry canary weight %d%% yet: %s",
		len(rep.Stragglers), rep.Proxies, applied, strings.Join(lagging(rep, len(dp.Stragglers)), ", ")), 2000)
	return dp
}

// lagging names the first n stragglers of rep, each with why it lags when
// the report says: "frontend-v1.shop (its routes send 0%)".
func lagging(rep DataPlaneReport, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = rep.Stragglers[i]
		if i < len(rep.Lag) && rep.Lag[i] != "" {
			out[i] += " (" + rep.Lag[i] + ")"
		}
	}
	return out
}

// stampTransition records the confirmation on the latest transition
// decided before the weight was written: the step or rollback that set it.
func stampTransition(hist []v1alpha1.Transition, dp *v1alpha1.DataPlaneStatus) {
	for i := len(hist) - 1; i >= 0; i-- {
		if !hist[i].Time.After(dp.WrittenAt.Time) {
			if hist[i].DataPlaneConfirmedAt == nil {
				hist[i].DataPlaneConfirmedAt = dp.ConfirmedAt.DeepCopy()
			}
			return
		}
	}
}

// dataPlanePending reports whether the weight on the route still waits for
// the proxies.
func dataPlanePending(st v1alpha1.RolloutStatus) bool {
	dp := st.DataPlane
	return dp == nil || dp.Weight != st.AppliedWeight || dp.ConfirmedAt == nil
}

// followDataPlane looks at what the proxies carry of the weight on the
// route, records a change in the status, and queues a rollback's
// notification once the proxies have 100/0 or the bound has passed. It
// returns what Next needs to know. Nothing is asked before the rollout has
// written a weight.
func (e *Engine) followDataPlane(ctx context.Context, ro *v1alpha1.Rollout) (*DataPlaneObservation, error) {
	if e.o.DataPlane == nil || ro.Status.Phase == "" || ro.Status.Phase == v1alpha1.PhasePending {
		return nil, nil
	}
	obs := &DataPlaneObservation{Timeout: e.dataPlaneTimeout()}
	now := e.o.Clock.Now()
	st := ro.Status
	if st.Phase.Terminal() && !e.stillFollowing(st, now) {
		// A finished rollout's last weight is followed until the proxies
		// have it or the bound has passed (and its rollback notified),
		// never after: its route may be a successor's by then.
		return nil, nil
	}
	t := TargetOf(ro)
	if r := st.Target; r != nil {
		// The route and host that preflight resolved, as the proxies know them.
		t.Route, t.Host = cmp.Or(t.Route, r.Route), cmp.Or(t.Host, r.Host)
	}
	rep, err := e.o.DataPlane.Confirm(ctx, t, st.AppliedWeight)
	if err != nil {
		obs.Unreachable = err.Error()
		if !errors.Is(err, ErrControlPlaneUnreachable) {
			err = fmt.Errorf("%w: %w", ErrControlPlaneUnreachable, err)
		}
	}
	dp := dataPlaneUpdate(st.DataPlane, st.AppliedWeight, rep, err, now)
	confirmedNow := dp.ConfirmedAt != nil && (st.DataPlane == nil || st.DataPlane.ConfirmedAt == nil)
	notify := st.Phase == v1alpha1.PhaseRolledBack && !dp.Notified && dp.Weight == 0 &&
		(dp.ConfirmedAt != nil || now.Sub(dp.WrittenAt.Time) >= obs.Timeout)
	if notify {
		dp.Notified = true
	}
	if equality.Semantic.DeepEqual(st.DataPlane, dp) {
		return obs, nil
	}
	ro.Status.DataPlane = dp
	if confirmedNow {
		stampTransition(ro.Status.History, dp)
	}
	if err := e.writeStatus(ctx, ro); err != nil {
		return nil, fmt.Errorf("record the data plane of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	if notify {
		ev := rollbackEvent(ro, now, dp.FromWeight)
		decided := rolledBackAt(ro.Status.History)
		if dp.DecidedAt != nil {
			decided = dp.DecidedAt.Time // to the microsecond
		}
		if dp.ConfirmedAt != nil {
			e.metrics.dataPlaneRolledBack(decided, dp.ConfirmedAt.Time)
		}
		ev.DataPlane = dataPlaneNote(dp, decided)
		e.queue.push(ev)
	}
	return obs, nil
}

func (e *Engine) dataPlaneTimeout() time.Duration {
	if e.o.DataPlaneTimeout > 0 {
		return e.o.DataPlaneTimeout
	}
	return DefaultDataPlaneTimeout
}

// stillFollowing reports whether a finished rollout's last weight is still
// followed: written within the bound and not yet confirmed, or a rollback
// not yet notified.
func (e *Engine) stillFollowing(st v1alpha1.RolloutStatus, now time.Time) bool {
	dp := st.DataPlane
	if dp == nil || dp.Weight != st.AppliedWeight || dp.ConfirmedAt != nil {
		return false
	}
	return now.Sub(dp.WrittenAt.Time) <= e.dataPlaneTimeout() || (st.Phase == v1alpha1.PhaseRolledBack && !dp.Notified)
}

// soonerWhilePending shortens a tick's requeue while the weight on the
// route waits for the proxies, within the bound, so the confirmation is
// seen within dataPlanePoll of istiod reporting it. Past the bound a
// rollout in progress is held and looked at on its ticks.
func (e *Engine) soonerWhilePending(res ctrl.Result, ro *v1alpha1.Rollout) ctrl.Result {
	st := ro.Status
	if e.o.DataPlane == nil || st.Phase == "" || st.Phase == v1alpha1.PhasePending || !dataPlanePending(st) || st.DataPlane == nil {
		return res
	}
	if !e.stillFollowing(st, e.o.Clock.Now()) {
		return res
	}
	if res.RequeueAfter == 0 || res.RequeueAfter > dataPlanePoll {
		res.RequeueAfter = dataPlanePoll
	}
	return res
}

// rolledBackAt is when the latest rollback was decided.
func rolledBackAt(hist []v1alpha1.Transition) time.Time {
	for i := len(hist) - 1; i >= 0; i-- {
		if strings.HasPrefix(hist[i].To, string(v1alpha1.PhaseRolledBack)) {
			return hist[i].Time.Time
		}
	}
	return time.Time{}
}

// DataPlaneNote is what a rollback's notification says about the proxies.
type DataPlaneNote struct {
	// Proxies is how many connected proxies route the service.
	Proxies int
	// ConfirmedAt is when they all had 100/0; zero when they did not
	// within the bound.
	ConfirmedAt time.Time
	// AfterDecision is ConfirmedAt minus the rollback's decision.
	AfterDecision time.Duration
	// Stragglers name the proxies that lagged, when not confirmed.
	Stragglers []string
	// Why says why it is not confirmed, when it is not.
	Why string
}

func dataPlaneNote(dp *v1alpha1.DataPlaneStatus, decided time.Time) *DataPlaneNote {
	n := &DataPlaneNote{Proxies: int(dp.Proxies), Stragglers: dp.Stragglers, Why: dp.Message}
	if dp.ConfirmedAt != nil {
		n.ConfirmedAt = dp.ConfirmedAt.Time
		if !decided.IsZero() {
			n.AfterDecision = dp.ConfirmedAt.Sub(decided)
		}
	}
	return n
}

// The reasons of a hold for the data plane.
const (
	reasonDataPlaneUnconfirmed    = "DataPlaneUnconfirmed"
	reasonControlPlaneUnreachable = "ControlPlaneUnreachable"
)

// dataPlaneHold holds a rollout in progress, paused with its weights
// unchanged, while the control plane cannot be asked what the proxies
// carry or while they have not taken the route's weight within the bound:
// moving on would judge, and shift, traffic that the proxies do not route
// as the VirtualService says. It reports whether it held. The hold is not
// a person's pause: spec.paused stays as it is, and the rollout resumes by
// itself once the proxies carry the weight.
func (d *decider) dataPlaneHold() bool {
	dp := d.obs.DataPlane
	if dp == nil || d.spec.Paused {
		return false
	}
	reason, why := "", ""
	switch s := d.st.DataPlane; {
	case dp.Unreachable != "":
		reason, why = reasonControlPlaneUnreachable, "istiod cannot tell what the proxies carry ("+dp.Unreachable+")"
	case s != nil && s.Weight == d.st.AppliedWeight && s.ConfirmedAt == nil && d.now.Sub(s.WrittenAt.Time) >= dp.Timeout:
		reason, why = reasonDataPlaneUnconfirmed, fmt.Sprintf("the proxies did not take canary weight %d%% within %v of its write: %s",
			s.Weight, dp.Timeout, strings.TrimPrefix(s.Message, "not confirmed: "))
	default:
		if d.st.Phase == v1alpha1.PhasePaused && d.heldForDataPlane() {
			d.setCondition(CondDataPlane, metav1.ConditionTrue, "Confirmed", "istiod answers, and the proxies carry or are taking the route's weight")
		}
		return false
	}
	d.setCondition(CondDataPlane, metav1.ConditionFalse, reason, why)
	if d.st.Phase == v1alpha1.PhasePaused {
		d.st.Message = clip(why+"; held with the weights unchanged until they do", maxMessage)
		return true
	}
	d.enter(v1alpha1.PhasePaused, reason, why+"; held with the weights unchanged, and resumed once the proxies carry them")
	return true
}

// heldForDataPlane reports whether the latest pause was a hold for the
// data plane.
func (d *decider) heldForDataPlane() bool {
	c := meta.FindStatusCondition(d.st.Conditions, CondDataPlane)
	return c != nil && c.Status == metav1.ConditionFalse
}

func ptrMicro(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t)
	return &m
}
