package rollout

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestLiveStatusIsTheBasisOfItsVersionOnly: an unwritten tick's status is
// the basis of the next tick while the Rollout is stored as it was, and
// is dropped once anything wrote it (another resourceVersion) or it was
// created again (another uid).
func TestLiveStatusIsTheBasisOfItsVersionOnly(t *testing.T) {
	l := newLiveStatuses()
	stored := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", UID: "u1", ResourceVersion: "10"}}
	stored.Status.Analysis.PassedTicks = 1
	next := *stored.Status.DeepCopy()
	next.Analysis.PassedTicks = 2
	next.Analysis.LastTickAt = ptrTime(t0)
	l.keep(stored, next)

	ro := stored.DeepCopy()
	l.overlay(ro)
	if ro.Status.Analysis.PassedTicks != 2 || ro.Status.Analysis.LastTickAt == nil {
		t.Fatalf("the same version's basis: %+v, want the unwritten tick", ro.Status.Analysis)
	}
	ro.Status.Analysis.PassedTicks = 7 // the basis is a copy
	again := stored.DeepCopy()
	l.overlay(again)
	if again.Status.Analysis.PassedTicks != 2 {
		t.Errorf("an overlay shares its status with the kept one: %d", again.Status.Analysis.PassedTicks)
	}

	recreated := stored.DeepCopy()
	recreated.UID = "u2"
	l.overlay(recreated)
	if recreated.Status.Analysis.PassedTicks != 1 {
		t.Errorf("a Rollout created again took the old one's tick: %+v", recreated.Status.Analysis)
	}
	l.keep(stored, next)
	written := stored.DeepCopy()
	written.ResourceVersion = "11"
	l.overlay(written)
	if written.Status.Analysis.PassedTicks != 1 || len(l.m) != 0 {
		t.Errorf("a version written since took the unwritten tick (%d), or it was kept (%d)", written.Status.Analysis.PassedTicks, len(l.m))
	}
}

// TestPausedByCountsAtItsGenerationOnly: a pause or resume made through
// serin is credited to its author at the generation it made, and a later
// hand edit of spec.paused (a newer generation) to no one.
func TestPausedByCountsAtItsGenerationOnly(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Generation: 5, Annotations: map[string]string{v1alpha1.AnnotationPausedBy: "5/alice"}}}
	if got := pausedBy(ro); got != "alice" {
		t.Errorf("at its generation: %q, want alice", got)
	}
	ro.Generation = 6
	if got := pausedBy(ro); got != "" {
		t.Errorf("after a hand edit: %q, want no one", got)
	}
	ro.Annotations[v1alpha1.AnnotationPausedBy] = "alice"
	if got := pausedBy(ro); got != "" {
		t.Errorf("without a generation: %q, want no one", got)
	}
}
