package e2e

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The preflight in Istio's terms (issue 12), on the real stack with the
// real controller: a route to a host no Service defines is refused naming
// IST0101 and nothing is written; a canary whose pods go away mid-rollout
// is paused naming IST0173, its weight held.

func TestIstioPreflightRefusesAHostWithNoService(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	kc := kubernetes.NewForConfigOrDie(st.RESTConfig())
	must(t, kc.CoreV1().Services(e.ns).Delete(e.ctx, "checkout", metav1.DeleteOptions{}))
	rv := e.vs().ResourceVersion
	e.startController()
	e.rollout("nohost", nil)
	ro := e.waitPhase("nohost", v1alpha1.PhaseFailed, 20*time.Second)
	if !strings.Contains(ro.Status.Message, "IST0101 referenced host not found") || !strings.Contains(ro.Status.Message, "nothing was written") {
		t.Errorf("failure message %q does not name IST0101 and say nothing was written", ro.Status.Message)
	}
	if got := e.vs().ResourceVersion; got != rv {
		t.Errorf("the VirtualService was written: resourceVersion %s -> %s", rv, got)
	}
}

func TestIstioPreflightPausesWhenTheCanaryLosesItsPods(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("nopods", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(4 * time.Second) })
	e.routeIs(90, 10, 30*time.Second)
	e.tolerate("IST0173", "the test deletes the canary's pods, which subset v2 selects")
	kc := kubernetes.NewForConfigOrDie(st.RESTConfig())
	must(t, kc.CoreV1().Pods(e.ns).DeleteCollection(e.ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=checkout,version=v2"}))
	ro := e.waitPhase("nopods", v1alpha1.PhasePaused, 15*time.Second)
	if !strings.Contains(ro.Status.Message, "IST0173") || !strings.Contains(ro.Status.Message, "selects no pods") {
		t.Errorf("pause message %q does not name IST0173", ro.Status.Message)
	}
	time.Sleep(5 * time.Second) // past the step interval: no advance
	e.routeIs(90, 10, time.Second)
}
