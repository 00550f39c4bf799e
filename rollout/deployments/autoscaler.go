package deployments

import (
	"context"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
)

// autoscalerOf returns the team's HorizontalPodAutoscaler of w: the one
// in w's namespace that scales the Deployment w, or nil.
func (m *Manager) autoscalerOf(ctx context.Context, w rollout.Workload) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := m.c.List(ctx, &list, client.InNamespace(w.Namespace)); err != nil {
		return nil, fmt.Errorf("list HorizontalPodAutoscalers in %s: %w", w.Namespace, err)
	}
	for i, h := range list.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == w.Deployment && h.Labels[LabelWorkload] == "" {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// mirrorAutoscaler gives the stable copy an autoscaler equivalent to the
// team's: the same bounds and metrics, scaling the copy. The team's own
// does nothing while its Deployment is at zero, as Kubernetes disables
// autoscaling of a Deployment scaled to zero.
func (m *Manager) mirrorAutoscaler(ctx context.Context, w rollout.Workload, team *autoscalingv2.HorizontalPodAutoscaler) error {
	want := team.Spec.DeepCopy()
	want.ScaleTargetRef.Name = w.StableCopy()
	name := types.NamespacedName{Namespace: w.Namespace, Name: w.StableCopy()}
	cur := &autoscalingv2.HorizontalPodAutoscaler{}
	err := m.c.Get(ctx, name, cur)
	if apierrors.IsNotFound(err) {
		h := &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.StableCopy(),
				Labels: map[string]string{LabelWorkload: w.Deployment, labelManagedBy: "serin"}},
			Spec: *want,
		}
		if err := m.c.Create(ctx, h, client.FieldOwner(m.owner)); err != nil {
			return fmt.Errorf("create HorizontalPodAutoscaler %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get HorizontalPodAutoscaler %s: %w", name, err)
	}
	if equality.Semantic.DeepEqual(cur.Spec, *want) {
		return nil
	}
	cur.Spec = *want
	if err := m.c.Update(ctx, cur, client.FieldOwner(m.owner)); err != nil {
		return fmt.Errorf("update HorizontalPodAutoscaler %s: %w", name, err)
	}
	return nil
}
