package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
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

// setWeights edits the route as a person would: read, change, write, and
// read again when the controller wrote in between.
func (e *env) setWeights(stable, canary int32) {
	e.t.Helper()
	must(e.t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vs := e.vs()
		vs.Spec.Http[0].Route = e.dests(stable, canary)
		_, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{})
		return err
	}))
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
	e.rollout("b", func(r *v1alpha1.Rollout) {
		r.Spec.StepInterval = dur(3 * time.Second)
		r.Spec.Steps = []int32{10, 25, 100}
	})
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
		e.tolerate("IST0101", "the test removes subset v2, which the route still names")
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

// Case 7: a step's dwell counts from when its weight reached the route. A
// ValidatingAdmissionPolicy refuses every VirtualService write for longer
// than the step interval (a webhook outage, an RBAC slip); once writes go
// through again, the next step still waits a whole dwell.
func TestTrustDwellStartsWhenTheWeightIsOnTheRoute(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	const step = 4 * time.Second
	e.rollout("dwell", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(step); r.Spec.Steps = []int32{10, 50, 100} })
	e.routeIs(90, 10, 30*time.Second)
	unblock := e.blockVirtualServiceWrites()
	e.eventually(20*time.Second, "step 50 decided", func() (bool, string) {
		ro := e.get("dwell")
		return ro.Status.CanaryWeight == 50, fmt.Sprint(ro.Status.CanaryWeight)
	})
	time.Sleep(step + time.Second) // the write stays refused past the step interval
	if _, c := weights(e.vs(), "primary"); c != 10 {
		t.Fatalf("the policy did not hold the route: canary %d", c)
	}
	unblocked := time.Now()
	unblock()
	ro := e.waitPhase("dwell", v1alpha1.PhaseSucceeded, 30*time.Second)
	confirmed := ro.Status.WeightConfirmedAt
	var promoted time.Time
	for _, h := range ro.Status.History {
		if h.Reason == "Succeeded" {
			promoted = h.Time.Time
		}
	}
	// Timestamps in the status have second precision.
	if confirmed == nil || promoted.IsZero() {
		t.Fatalf("no confirmation (%v) or promotion (%v) in the status", confirmed, promoted)
	}
	if promoted.Sub(unblocked.Truncate(time.Second)) < step {
		t.Errorf("promoted at %v, %v after the 50%% weight could first reach the route (%v); want a whole %v dwell",
			promoted, promoted.Sub(unblocked), unblocked, step)
	}
}

// blockVirtualServiceWrites installs a ValidatingAdmissionPolicy that
// refuses updates of the namespace's VirtualServices, and returns the
// function that removes it.
func (e *env) blockVirtualServiceWrites() func() {
	e.t.Helper()
	name := "block-vs-" + e.ns
	policy := &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	fail := admissionv1.Fail
	policy.Spec = admissionv1.ValidatingAdmissionPolicySpec{
		FailurePolicy: &fail,
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
			RuleWithOperations: admissionv1.RuleWithOperations{
				Operations: []admissionv1.OperationType{admissionv1.Update},
				Rule: admissionv1.Rule{APIGroups: []string{"networking.istio.io"}, APIVersions: []string{"*"},
					Resources: []string{"virtualservices"}},
			},
		}}},
		Validations: []admissionv1.Validation{{Expression: "false", Message: "VirtualService writes are refused for the test"}},
	}
	must(e.t, e.c.Create(e.ctx, policy))
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name}}
	binding.Spec = admissionv1.ValidatingAdmissionPolicyBindingSpec{
		PolicyName:        name,
		ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
		MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubernetes.io/metadata.name": e.ns}}},
	}
	must(e.t, e.c.Create(e.ctx, binding))
	// The policy takes effect once the API server has loaded it.
	e.eventually(20*time.Second, "VirtualService writes refused", func() (bool, string) {
		vs := e.vs()
		vs.Labels = map[string]string{"probe": fmt.Sprint(time.Now().UnixNano())}
		_, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{})
		return err != nil, fmt.Sprint(err)
	})
	removed := false
	remove := func() {
		if removed {
			return
		}
		removed = true
		_ = e.c.Delete(e.ctx, binding)
		_ = e.c.Delete(e.ctx, policy)
	}
	e.t.Cleanup(remove)
	return remove
}

// Case 1: a custom query that would run forever is refused naming the
// field, and freezes nothing: a failing canary beside it is rolled back.
func TestTrustHostileQueryFreezesNothing(t *testing.T) {
	e := newMeshEnv(t, 100, "")
	e.startController()
	hostile := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "bomb", Namespace: e.ns}}
	hostile.Spec = v1alpha1.RolloutSpec{VirtualService: "elsewhere", StableSubset: "v1", CanarySubset: "v2",
		Analysis: &v1alpha1.AnalysisSpec{Custom: []v1alpha1.CustomCheck{{Name: "bomb", Op: "<", Threshold: 1,
			Query: "up{{range 9000000000000000000}}{{end}}"}}}}
	if err := e.c.Create(e.ctx, hostile); err == nil {
		ro := e.waitPhase("bomb", v1alpha1.PhaseFailed, 20*time.Second)
		if !strings.Contains(ro.Status.Message, "spec.analysis.custom") {
			t.Errorf("the hostile rollout failed with %q, want the field named", ro.Status.Message)
		}
	} else if !strings.Contains(err.Error(), "custom") {
		t.Errorf("the hostile rollout was refused with %v, want the field named", err)
	}
	e.fault("v2", meshsim.Fault{ErrorRate: 0.5})
	e.rollout("victim", analysed(time.Minute, nil))
	e.waitPhase("victim", v1alpha1.PhaseRolledBack, 30*time.Second)
}

// Case 8: a schedule that never fires is refused, not taken as "now".
func TestTrustScheduleThatNeverFires(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("feb30", func(r *v1alpha1.Rollout) { r.Spec.Schedule = &v1alpha1.Schedule{Start: "0 0 30 2 *"} })
	ro := e.waitPhase("feb30", v1alpha1.PhaseFailed, 20*time.Second)
	if !strings.Contains(ro.Status.Message, "spec.schedule.start") || !strings.Contains(ro.Status.Message, "never") {
		t.Errorf("message %q: want spec.schedule.start named as never firing", ro.Status.Message)
	}
	if _, c := weights(e.vs(), "primary"); c != 0 {
		t.Errorf("a rollout that can never start moved the route to canary %d", c)
	}
}

// Case 4: however long a reason is, the status that carries it is
// accepted, so the decision it explains is never blocked: a 40 KiB abort
// reason still aborts, and the route returns to 100/0.
func TestTrustLongReasonNeverBlocks(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("long", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	e.routeIs(90, 10, 30*time.Second)
	e.annotate("long", map[string]string{v1alpha1.AnnotationAbort: strings.Repeat("the p99 of checkout looks off; ", 1300)})
	ro := e.waitPhase("long", v1alpha1.PhaseAborted, 10*time.Second)
	e.routeIs(100, 0, 5*time.Second)
	if n := len(ro.Status.Message); n > 4096 {
		t.Errorf("the stored message is %d bytes, want it clipped", n)
	}
	for _, c := range ro.Status.Conditions {
		if len(c.Message) > 4096 {
			t.Errorf("condition %s carries %d bytes, want it clipped", c.Type, len(c.Message))
		}
	}
}
