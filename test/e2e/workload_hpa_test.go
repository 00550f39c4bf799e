package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestWorkloadWithAnAutoscaler: the team's HorizontalPodAutoscaler gets an
// equivalent one on the stable copy, and the canary's replicas follow the
// traffic weight (sized for the next step, at least one) instead of
// doubling the service. No autoscaling controller runs on the local stack;
// the test checks what serin writes.
func TestWorkloadWithAnAutoscaler(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	d := e.workloadDeployment()
	four := int32(4)
	d.Spec.Replicas = &four
	must(t, e.c.Update(e.ctx, d))
	two := int32(2)
	cpu := int32(70)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "checkout"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "checkout"},
			MinReplicas:    &two, MaxReplicas: 8,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu}}}},
		},
	}
	must(t, e.c.Create(e.ctx, hpa))
	e.deliver(3*time.Second, nil)

	mirror := &autoscalingv2.HorizontalPodAutoscaler{}
	must(t, e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: "checkout-stable"}, mirror))
	if mirror.Spec.ScaleTargetRef.Name != "checkout-stable" || *mirror.Spec.MinReplicas != 2 || mirror.Spec.MaxReplicas != 8 ||
		len(mirror.Spec.Metrics) != 1 || *mirror.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
		t.Fatalf("the stable copy's autoscaler %+v does not mirror the team's", mirror.Spec)
	}

	e.kubectl("set", "image", "deployment/checkout", "checkout=shop/checkout:2")
	var sizes []int32 // the canary copy's replica counts, by weight, as seen
	byWeight := map[int32]int32{}
	e.eventually(90*time.Second, "the release to end", func() (bool, string) {
		ro := e.get("checkout")
		if e.exists("checkout-canary") {
			n := *e.deployment("checkout-canary").Spec.Replicas
			if len(sizes) == 0 || sizes[len(sizes)-1] != n {
				sizes = append(sizes, n)
			}
			if ro.Status.Phase == v1alpha1.PhaseProgressing {
				byWeight[ro.Status.CanaryWeight] = max(byWeight[ro.Status.CanaryWeight], n)
			}
		}
		w := ro.Status.Workload
		return w != nil && w.Done && len(ro.Status.Releases) == 1, fmt.Sprintf("%s %d%%: %s", ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.Message)
	})
	ro := e.get("checkout")
	if r := ro.Status.Releases[0]; r.Outcome != "Succeeded" {
		t.Fatalf("release %+v", r)
	}
	// 4 stable pods: 1 canary pod for 10% (and for 25%, ahead of 50%),
	// 2 at 25% ahead of 50%, 4 at 50% ahead of 100%; then 0.
	if sizes[0] != 1 || !slices.Contains(sizes, 4) || sizes[len(sizes)-1] != 0 || slices.Max(sizes) > 4 {
		t.Errorf("canary replica counts %v, want them to grow from 1 with the weight to 4, then 0", sizes)
	}
	if byWeight[10] > 1 {
		t.Errorf("at 10%% the canary ran %d pods, want 1 (of 4 stable)", byWeight[10])
	}
	e.assertServingStable("shop/checkout:2")
}
