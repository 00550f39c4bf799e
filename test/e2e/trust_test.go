package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// Regression tests of the Trust issue (#10) on the real stack: promises
// that hold under faults and hand edits.

func (e *env) annotate(name string, kv map[string]string) {
	e.t.Helper()
	ro := e.get(name)
	patch := client.MergeFrom(ro.DeepCopy())
	if ro.Annotations == nil {
		ro.Annotations = map[string]string{}
	}
	for k, v := range kv {
		ro.Annotations[k] = v
	}
	must(e.t, e.c.Patch(e.ctx, ro, patch))
}

func (e *env) setPaused(name string, paused bool) {
	e.t.Helper()
	ro := e.get(name)
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Paused = paused
	must(e.t, e.c.Patch(e.ctx, ro, patch))
}

func (e *env) setWeights(stable, canary int32) {
	e.t.Helper()
	vs := e.vs()
	vs.Spec.Http[0].Route = e.dests(stable, canary)
	_, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{})
	must(e.t, err)
}

func (e *env) routeIs(stable, canary int32, within time.Duration) {
	e.t.Helper()
	e.eventually(within, fmt.Sprintf("route at %d/%d", stable, canary), func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == stable && c == canary, fmt.Sprintf("%d/%d", s, c)
	})
}

// Case 2: promote after a drift pause takes the route to 0/100, never
// reporting Succeeded with the route stranded at the hand-edited weight.
func TestTrustPromoteAfterDrift(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("drift", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	e.routeIs(90, 10, 30*time.Second)
	e.setWeights(70, 30)
	e.waitPhase("drift", v1alpha1.PhasePaused, 10*time.Second)
	e.annotate("drift", map[string]string{v1alpha1.AnnotationPromote: "true"})
	ro := e.waitPhase("drift", v1alpha1.PhaseSucceeded, 10*time.Second)
	e.routeIs(0, 100, 10*time.Second)
	if ro.Status.CanaryWeight != 100 {
		t.Errorf("status weight %d, want 100", ro.Status.CanaryWeight)
	}
}

// Case 3: deleting a finished rollout leaves its successor's route alone.
func TestTrustDeletingAFinishedRolloutKeepsTheSuccessorsRoute(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("a", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	e.routeIs(90, 10, 30*time.Second)
	e.annotate("a", map[string]string{v1alpha1.AnnotationAbort: "try again"})
	e.waitPhase("a", v1alpha1.PhaseAborted, 10*time.Second)
	e.routeIs(100, 0, 10*time.Second)
	e.rollout("b", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(3 * time.Second); r.Spec.Steps = []int32{10, 25, 100} })
	e.eventually(30*time.Second, "b at 25%", func() (bool, string) {
		ro := e.get("b")
		return ro.Status.AppliedWeight == 25, fmt.Sprint(ro.Status.AppliedWeight)
	})
	must(t, e.c.Delete(e.ctx, e.get("a")))
	e.eventually(10*time.Second, "a gone", func() (bool, string) {
		err := e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: "a"}, &v1alpha1.Rollout{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if s, c := weights(e.vs(), "primary"); c == 0 {
		t.Fatalf("deleting the finished rollout reset its successor's route to %d/%d", s, c)
	}
	if ro := e.get("b"); ro.Status.Phase == v1alpha1.PhasePaused {
		t.Fatalf("the successor paused: %s", ro.Status.Message)
	}
	e.waitPhase("b", v1alpha1.PhaseSucceeded, 30*time.Second)
}

// Case 5: a paused canary that degrades is still rolled back.
func TestTrustPausedCanaryIsStillAnalysed(t *testing.T) {
	e := newMeshEnv(t, 100, "")
	e.startController()
	e.rollout("held", analysed(5*time.Minute, nil))
	e.routeIs(90, 10, 30*time.Second)
	e.setPaused("held", true)
	e.waitPhase("held", v1alpha1.PhasePaused, 10*time.Second)
	e.fault("v2", meshsim.Fault{ErrorRate: 0.5})
	ro := e.waitPhase("held", v1alpha1.PhaseRolledBack, 30*time.Second)
	if !strings.Contains(ro.Status.Message, "error-rate") {
		t.Errorf("rollback message %q does not name the failing check", ro.Status.Message)
	}
	e.routeIs(100, 0, 5*time.Second)
}

// Case 6: the mesh is checked on every tick. A removed canary subset
// pauses the rollout naming the DestinationRule, with the weight held; a
// deleted VirtualService pauses it too, and abort still works.
func TestTrustMeshChangedUnderTheRollout(t *testing.T) {
	t.Run("subset removed", func(t *testing.T) {
		e := newEnv(t)
		e.mesh(nil)
		e.startController()
		e.rollout("dr", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(4 * time.Second) })
		e.routeIs(90, 10, 30*time.Second)
		dr, err := e.istio.NetworkingV1().DestinationRules(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
		must(t, err)
		dr.Spec.Subsets = dr.Spec.Subsets[:1]
		_, err = e.istio.NetworkingV1().DestinationRules(e.ns).Update(e.ctx, dr, metav1.UpdateOptions{})
		must(t, err)
		ro := e.waitPhase("dr", v1alpha1.PhasePaused, 10*time.Second)
		if !strings.Contains(ro.Status.Message, "DestinationRule") || !strings.Contains(ro.Status.Message, "v2") {
			t.Errorf("pause message %q does not name the DestinationRule and the subset", ro.Status.Message)
		}
		time.Sleep(5 * time.Second) // past the step interval: no advance
		if s, c := weights(e.vs(), "primary"); c != 10 {
			t.Errorf("route %d/%d after the subset went away, want the weight held at 10", s, c)
		}
	})
	t.Run("VirtualService deleted", func(t *testing.T) {
		e := newEnv(t)
		e.mesh(nil)
		e.startController()
		e.rollout("vs", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
		e.routeIs(90, 10, 30*time.Second)
		must(t, e.istio.NetworkingV1().VirtualServices(e.ns).Delete(e.ctx, "checkout", metav1.DeleteOptions{}))
		ro := e.waitPhase("vs", v1alpha1.PhasePaused, 10*time.Second)
		if !strings.Contains(ro.Status.Message, "VirtualService") {
			t.Errorf("pause message %q does not name the VirtualService", ro.Status.Message)
		}
		e.annotate("vs", map[string]string{v1alpha1.AnnotationAbort: "the route is gone"})
		e.waitPhase("vs", v1alpha1.PhaseAborted, 10*time.Second)
	})
}
