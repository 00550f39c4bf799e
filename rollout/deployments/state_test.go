package deployments

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrackStateCountsOnlyTheNewTemplatesPods(t *testing.T) {
	two := int32(2)
	for _, c := range []struct {
		name                                    string
		gen, observed                           int64
		replicas, updated, available, wantReady int32
	}{
		{name: "rolled out", gen: 2, observed: 2, replicas: 2, updated: 2, available: 2, wantReady: 2},
		{name: "new pods up, old ones still serving", gen: 2, observed: 2, replicas: 4, updated: 2, available: 2, wantReady: 0},
		{name: "one new pod ready, one old left", gen: 2, observed: 2, replicas: 3, updated: 2, available: 2, wantReady: 1},
		{name: "the controller has not seen the new template", gen: 3, observed: 2, replicas: 2, updated: 2, available: 2, wantReady: 0},
	} {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: c.gen}, Spec: appsv1.DeploymentSpec{Replicas: &two},
			Status: appsv1.DeploymentStatus{ObservedGeneration: c.observed, Replicas: c.replicas, UpdatedReplicas: c.updated, AvailableReplicas: c.available}}
		if got := trackState(d).Ready; got != c.wantReady {
			t.Errorf("%s: ready %d, want %d", c.name, got, c.wantReady)
		}
	}
}
