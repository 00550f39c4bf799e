package rollout

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// WorkloadWatcher is implemented by a WorkloadManager that can tell when
// a workload or one of its copies changed, so that a release starts the
// moment the template changes rather than at the next poll.
type WorkloadWatcher interface {
	// Watch calls changed with every workload that changed (a change of
	// a copy names the workload it copies) until ctx ends.
	Watch(ctx context.Context, changed func(Workload)) error
}

// workloadField indexes Rollouts in the cache by spec.workload.deployment.
const workloadField = "spec.workload.deployment"

// watchWorkloads makes every change of a delivered workload reconcile
// the Rollouts that deliver it. It returns the source to watch, or nil
// when the WorkloadManager cannot watch (the rollouts then poll).
func (e *Engine) watchWorkloads(mgr ctrl.Manager) (source.TypedSource[reconcile.Request], error) {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Rollout{}, workloadField,
		func(o client.Object) []string {
			if w := o.(*v1alpha1.Rollout).Spec.Workload; w != nil {
				return []string{w.Deployment}
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("index Rollouts by workload: %w", err)
	}
	ww, ok := e.o.Workloads.(WorkloadWatcher)
	if !ok {
		return nil, nil
	}
	ch := make(chan event.TypedGenericEvent[Workload], 1024)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return ww.Watch(ctx, func(w Workload) {
			select {
			case ch <- event.TypedGenericEvent[Workload]{Object: w}:
			case <-ctx.Done():
			}
		})
	})); err != nil {
		return nil, fmt.Errorf("add the workload watch: %w", err)
	}
	reader := mgr.GetClient()
	return source.TypedChannel[Workload, reconcile.Request](ch, handler.TypedEnqueueRequestsFromMapFunc(
		func(ctx context.Context, w Workload) []reconcile.Request {
			var list v1alpha1.RolloutList
			if err := reader.List(ctx, &list, client.InNamespace(w.Namespace), client.MatchingFields{workloadField: w.Deployment}); err != nil {
				e.o.Log.Warn("list the Rollouts of a workload", "workload", w.String(), "err", err)
				return nil
			}
			reqs := make([]reconcile.Request, len(list.Items))
			for i, ro := range list.Items {
				reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}}
			}
			return reqs
		})), nil
}
