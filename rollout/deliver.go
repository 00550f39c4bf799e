package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// workloadMissingRecheck is how often a rollout whose workload does not
// exist (yet) looks for it again.
const workloadMissingRecheck = 5 * time.Second

// deliver runs the workload side of a rollout that delivers a workload:
// it observes the workload, decides with NextRelease, carries out the
// decision's actions and records its status. It reports whether Next
// should decide this tick too; when not, the result says when to look
// again.
func (e *Engine) deliver(ctx context.Context, ro *v1alpha1.Rollout, w Workload, now time.Time) (ctrl.Result, bool, error) {
	if e.o.Workloads == nil {
		return ctrl.Result{}, false, fmt.Errorf("Rollout %s/%s delivers %s, but this controller runs without a WorkloadManager", ro.Namespace, ro.Name, w)
	}
	ws, err := e.o.Workloads.Observe(ctx, w)
	if errors.Is(err, ErrNotFound) {
		return ctrl.Result{RequeueAfter: workloadMissingRecheck}, false, e.missingWorkload(ctx, ro, w)
	}
	if err != nil {
		return ctrl.Result{}, false, fmt.Errorf("observe %s: %w", w, err)
	}
	if ro.Status.Workload == nil || ro.Status.Workload.AdoptedAt == nil {
		// Nothing is started for a route serin cannot take over.
		if refused, err := e.checkAdoption(ctx, ro, w); refused || err != nil {
			return ctrl.Result{RequeueAfter: workloadMissingRecheck}, false, err
		}
	}
	d := NextRelease(ro.Status, ro.Spec, ReleaseObservation{Generation: ro.Generation, Workload: w, State: ws, Retry: retryRequest(ro)}, now)
	for _, a := range d.Actions {
		if err := e.carryOut(ctx, ro, w, a); err != nil {
			return ctrl.Result{}, false, err
		}
	}
	if !d.Proceed || worthWriting(ro.Status, d.Status) {
		if err := e.apply(ctx, ro, Decision{Status: d.Status, Events: d.Events, Unannotate: d.Unannotate}); err != nil {
			return ctrl.Result{}, false, err
		}
	}
	if d.Proceed {
		return ctrl.Result{}, true, nil
	}
	// A superseded release or a promotion returns the route to stable.
	if err := e.converge(ctx, ro, nil, time.Time{}); err != nil {
		return ctrl.Result{}, false, err
	}
	return ctrl.Result{RequeueAfter: d.RequeueAfter}, false, nil
}

// carryOut performs one action of a release decision.
func (e *Engine) carryOut(ctx context.Context, ro *v1alpha1.Rollout, w Workload, a WorkloadAction) error {
	switch a.Kind {
	case ActionSetTrack:
		if err := e.o.Workloads.SetTrack(ctx, w, a.Track, a.Revision, a.Replicas); err != nil {
			return fmt.Errorf("set the %s track of %s to revision %s × %d: %w", a.Track, w, a.Revision, a.Replicas, err)
		}
	case ActionScaleWorkload:
		if err := e.o.Workloads.ScaleWorkload(ctx, w, a.Replicas); err != nil {
			return fmt.Errorf("scale %s to %d: %w", w, a.Replicas, err)
		}
	case ActionAdoptRoute:
		ad, ok := e.o.Router.(RouteAdopter)
		if !ok {
			return fmt.Errorf("Rollout %s/%s delivers %s, but the traffic router cannot adopt routes", ro.Namespace, ro.Name, w)
		}
		if err := ad.AdoptRoute(ctx, TargetOf(ro)); err != nil {
			return fmt.Errorf("adopt the route %s for %s: %w", TargetOf(ro), w, err)
		}
	case ActionSelectCanary:
		ad, ok := e.o.Router.(RouteAdopter)
		if !ok {
			return fmt.Errorf("Rollout %s/%s delivers %s, but the traffic router cannot adopt routes", ro.Namespace, ro.Name, w)
		}
		if err := ad.SelectCanaryTrack(ctx, TargetOf(ro), a.Track); err != nil {
			return fmt.Errorf("point the canary subset of %s at the %s track: %w", TargetOf(ro), a.Track, err)
		}
	default:
		return fmt.Errorf("unknown workload action %q", a.Kind)
	}
	return nil
}

// checkAdoption records, and reports, why the route of ro cannot be
// adopted; nothing else is written.
func (e *Engine) checkAdoption(ctx context.Context, ro *v1alpha1.Rollout, w Workload) (bool, error) {
	ad, ok := e.o.Router.(RouteAdopter)
	var why error
	if !ok {
		why = errors.New("the traffic router cannot adopt routes")
	} else if why = ad.CheckAdoption(ctx, TargetOf(ro)); why == nil {
		return false, nil
	}
	st := *ro.Status.DeepCopy()
	if st.Phase == "" {
		st.Phase, st.CurrentStep = v1alpha1.PhasePending, -1
	}
	st.Message = clip(fmt.Sprintf("cannot deliver %s on %s: %v; nothing was written", w, TargetOf(ro), why), maxMessage)
	st.ObservedGeneration = ro.Generation
	return true, e.apply(ctx, ro, Decision{Status: st})
}

// missingWorkload records that the delivered workload does not exist.
// Nothing is written anywhere else: the rollout waits for it.
func (e *Engine) missingWorkload(ctx context.Context, ro *v1alpha1.Rollout, w Workload) error {
	st := *ro.Status.DeepCopy()
	if st.Phase == "" {
		st.Phase, st.CurrentStep = v1alpha1.PhasePending, -1
	}
	st.Message = fmt.Sprintf("%s does not exist; waiting for it (nothing was written)", w)
	st.ObservedGeneration = ro.Generation
	return e.apply(ctx, ro, Decision{Status: st})
}
