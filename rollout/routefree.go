package rollout

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// checkRouteFree adds a preflight failure when another rollout holds the
// same VirtualService route (see RouteHolder).
func (e *Engine) checkRouteFree(ctx context.Context, ro *v1alpha1.Rollout, pf *PreflightReport) error {
	var list v1alpha1.RolloutList
	if err := e.o.Client.List(ctx, &list, client.InNamespace(ro.Namespace),
		client.MatchingFields{virtualServiceField: ro.Spec.VirtualService}); err != nil {
		return fmt.Errorf("list Rollouts of VirtualService %s/%s: %w", ro.Namespace, ro.Spec.VirtualService, err)
	}
	others := make([]*v1alpha1.Rollout, len(list.Items))
	for i := range list.Items {
		others[i] = &list.Items[i]
	}
	if other := RouteHolder(ro, others); other != nil {
		pf.Failures = append(pf.Failures, Finding{Check: "Conflict", Message: fmt.Sprintf(
			"Rollout %s is already in progress on VirtualService %s/%s; one rollout per route at a time",
			other.Name, ro.Namespace, ro.Spec.VirtualService)})
	}
	return nil
}

// RouteHolder returns the rollout among others that holds ro's route, or
// nil when the route is free: one route, one rollout at a time, however
// the Rollouts were created. Another rollout holds it when it is on the
// same VirtualService and route (one that names no route takes the route
// with both destinations, so it clashes with any), has not finished, is
// not being deleted, and is either under way or older than ro: of two
// that wait to start, the older goes first, and a retried rollout waits
// for one that started since it ended. ro itself is skipped, and may be
// one not yet created, which is younger than every stored one.
func RouteHolder(ro *v1alpha1.Rollout, others []*v1alpha1.Rollout) *v1alpha1.Rollout {
	for _, other := range others {
		self := other.Namespace == ro.Namespace && other.Name == ro.Name
		if self || other.Namespace != ro.Namespace || other.Spec.VirtualService != ro.Spec.VirtualService ||
			other.Status.Phase.Terminal() || !other.DeletionTimestamp.IsZero() {
			continue
		}
		waiting := other.Status.Phase == "" || other.Status.Phase == v1alpha1.PhasePending
		if waiting && !olderThan(other, ro) {
			continue
		}
		if other.Spec.Route == "" || ro.Spec.Route == "" || other.Spec.Route == ro.Spec.Route {
			return other
		}
	}
	return nil
}

// virtualServiceField indexes Rollouts in the cache by
// spec.virtualService.
const virtualServiceField = "spec.virtualService"

// olderThan orders rollouts by creation, then name. One not yet created
// (no creation time) is younger than every stored one.
func olderThan(a, b *v1alpha1.Rollout) bool {
	if az, bz := a.CreationTimestamp.IsZero(), b.CreationTimestamp.IsZero(); az != bz {
		return bz
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}
