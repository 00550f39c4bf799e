package rollout

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The mesh is checked again every meshRecheck, and on every tick while it
// fails.
func TestMeshChecks(t *testing.T) {
	var m meshChecks
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "r", UID: "u1"}}
	runs := 0
	rep := PreflightReport{}
	run := func(context.Context) (PreflightReport, error) { runs++; return rep, nil }
	for _, at := range []time.Duration{0, time.Second, meshRecheck - time.Millisecond} {
		if _, err := m.check(t.Context(), ro, t0.Add(at), run); err != nil {
			t.Fatal(err)
		}
	}
	if runs != 1 {
		t.Fatalf("%d checks within %v, want 1", runs, meshRecheck)
	}
	rep = PreflightReport{Failures: []Finding{{Check: "DestinationRule", Message: "no subset v2"}}}
	_, _ = m.check(t.Context(), ro, t0.Add(meshRecheck), run)
	_, _ = m.check(t.Context(), ro, t0.Add(meshRecheck+time.Second), run)
	if runs != 3 {
		t.Errorf("%d checks, want one per tick while the mesh is broken (3)", runs)
	}
}
