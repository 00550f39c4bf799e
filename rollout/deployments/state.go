package deployments

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
)

// trackState is what a copy's status says, as the Deployment controller
// reports it: only pods of the copy's current template count as ready,
// and only once the controller has seen that template.
func trackState(d *appsv1.Deployment) rollout.TrackState {
	if d == nil {
		return rollout.TrackState{}
	}
	st := rollout.TrackState{Exists: true, Revision: d.Annotations[AnnotationRevision], Replicas: replicasOf(d)}
	if d.Status.ObservedGeneration >= d.Generation && st.Replicas > 0 {
		// During a rolling update availableReplicas counts the old pods
		// too; they are taken to be the available ones, so that a new
		// template is ready only by pods of its own.
		old := max(d.Status.Replicas-d.Status.UpdatedReplicas, 0)
		st.Ready = min(d.Status.UpdatedReplicas, max(d.Status.AvailableReplicas-old, 0))
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse {
			st.Stuck = fmt.Sprintf("Deployment %s: %s: %s", d.Name, c.Reason, c.Message)
		}
	}
	return st
}

// informerSource gives the shared informer of a type: a controller-runtime
// cache.
type informerSource interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// Watch calls changed with the workload of every Deployment that changes:
// the Deployment itself, or the one a copy copies.
func (m *Manager) Watch(ctx context.Context, changed func(rollout.Workload)) error {
	if m.cache == nil {
		<-ctx.Done()
		return nil
	}
	inf, err := m.cache.GetInformer(ctx, &appsv1.Deployment{})
	if err != nil {
		return fmt.Errorf("watch Deployments: %w", err)
	}
	notify := func(obj any) {
		if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			return
		}
		name := d.Name
		if w := d.Labels[LabelWorkload]; w != "" {
			name = w
		}
		changed(rollout.Workload{Namespace: d.Namespace, Deployment: name})
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, n any) { notify(n) },
		DeleteFunc: notify,
	})
	if err != nil {
		return fmt.Errorf("watch Deployments: %w", err)
	}
	<-ctx.Done()
	return inf.RemoveEventHandler(reg)
}
