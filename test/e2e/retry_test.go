package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// TestRetryAfterRollback: a canary that failed its analysis is retried
// through the REST API once the fault is gone. It starts again from the
// first step, 10%, with a fresh preflight and an analysis of its own (the
// old attempt's failure does not roll it back again), keeps its history
// with who retried, and succeeds.
func TestRetryAfterRollback(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(apiOperator+",olga,operator\n"+apiViewer+",victor,viewer\n"), 0o600))
	e.extraArgs = []string{"--auth", "static", "--api-token-file", tokens}
	e.fault("v2", meshsim.Fault{ErrorRate: 0.2})
	p := e.startController()
	e.rollout("again", analysed(5*time.Second, nil))
	old := e.waitPhase("again", v1alpha1.PhaseRolledBack, 90*time.Second)
	e.waitRouteRestored("again")

	base := "/api/v1/rollouts/" + e.ns + "/again"
	if code, body := apiDo(t, p, http.MethodPost, base+"/retry", apiViewer, nil); code != http.StatusForbidden {
		t.Errorf("a viewer's retry: %d %v, want 403", code, body)
	}
	e.sim.ClearFaults()
	retriedAt := time.Now().Truncate(time.Second)
	if code, body := apiDo(t, p, http.MethodPost, base+"/retry", apiOperator, nil); code != http.StatusOK {
		t.Fatalf("POST retry: %d %v", code, body)
	}

	var ro *v1alpha1.Rollout
	e.eventually(30*time.Second, "the retried rollout at step 0, 10%", func() (bool, string) {
		ro = e.get("again")
		st := ro.Status
		return st.Phase == v1alpha1.PhaseProgressing && st.CurrentStep == 0 && st.CanaryWeight == 10,
			fmt.Sprintf("%s step %d weight %d: %s", st.Phase, st.CurrentStep, st.CanaryWeight, st.Message)
	})
	e.eventually(10*time.Second, "10% on the route", func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == 90 && c == 10, fmt.Sprintf("%d/%d", s, c)
	})
	for _, k := range []string{v1alpha1.AnnotationRetry, v1alpha1.AnnotationRetryBy} {
		if v, ok := ro.Annotations[k]; ok {
			t.Errorf("annotation %s=%q left after the retry; it would retry the next rollback", k, v)
		}
	}
	// The old attempt's analysis is gone: the new one counts from its own
	// first step, and has no failure.
	a := ro.Status.Analysis
	if a.FirstFailureAt != nil || (a.Since != nil && a.Since.Time.Before(retriedAt)) {
		t.Errorf("analysis %+v carries the old attempt's (failed at %v)", a, old.Status.Analysis.FirstFailureAt)
	}
	n := len(old.Status.History)
	h := ro.Status.History
	if len(h) <= n || !slices.EqualFunc(h[:n], old.Status.History, func(x, y v1alpha1.Transition) bool { return x.Reason == y.Reason && x.To == y.To }) {
		t.Fatalf("history %+v does not keep the old one %+v", h, old.Status.History)
	}
	if r := h[n]; r.Reason != rollout.ReasonRetried || !strings.Contains(r.Message, "retried by olga after RolledBack") {
		t.Errorf("the transition after the rollback is %+v, want the retry by olga", r)
	}

	ro = e.waitPhase("again", v1alpha1.PhaseSucceeded, 120*time.Second)
	if got := ro.Status.History[len(ro.Status.History)-1].Reason; got != "Succeeded" {
		t.Errorf("the retried rollout ended by %q, want Succeeded", got)
	}
}

// TestRetryWaitsForTheRoute: a rollout retried by hand (kubectl annotate)
// while another rollout is under way on its route, started since it was
// aborted, does not start: its fresh preflight finds the route held, and
// the other rollout's traffic is left as it is.
func TestRetryWaitsForTheRoute(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	slow := func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(time.Hour) }
	e.rollout("first", slow)
	e.eventually(30*time.Second, "first at 10%", func() (bool, string) {
		_, c := weights(e.vs(), "primary")
		return c == 10, fmt.Sprint(c)
	})
	annotate(t, e, "first", map[string]string{v1alpha1.AnnotationAbort: "wrong build", v1alpha1.AnnotationAbortBy: "alice"})
	e.waitPhase("first", v1alpha1.PhaseAborted, 10*time.Second)
	e.waitRouteRestored("first")
	e.rollout("second", slow)
	e.waitPhase("second", v1alpha1.PhaseProgressing, 30*time.Second)
	e.eventually(10*time.Second, "second at 10% on the route", func() (bool, string) {
		_, c := weights(e.vs(), "primary")
		return c == 10, fmt.Sprint(c)
	})

	annotate(t, e, "first", map[string]string{v1alpha1.AnnotationRetry: "true", v1alpha1.AnnotationRetryBy: "bob"})
	ro := e.waitPhase("first", v1alpha1.PhaseFailed, 30*time.Second)
	if !strings.Contains(ro.Status.Message, "Rollout second is already in progress") {
		t.Errorf("message %q does not name the rollout that holds the route", ro.Status.Message)
	}
	if _, c := weights(e.vs(), "primary"); c != 10 {
		t.Errorf("canary weight %d after the refused retry, want second's 10", c)
	}
	if got := e.get("second").Status.Phase; got != v1alpha1.PhaseProgressing {
		t.Errorf("second is %s after the refused retry, want Progressing", got)
	}
	for _, k := range []string{v1alpha1.AnnotationRetry, v1alpha1.AnnotationAbort} {
		if v, ok := ro.Annotations[k]; ok {
			t.Errorf("annotation %s=%q left on first after its retry", k, v)
		}
	}
}

// annotate sets annotations on a Rollout, as kubectl annotate does.
func annotate(t *testing.T, e *env, name string, kv map[string]string) {
	t.Helper()
	ro := e.get(name)
	patch := client.MergeFrom(ro.DeepCopy())
	if ro.Annotations == nil {
		ro.Annotations = map[string]string{}
	}
	for k, v := range kv {
		ro.Annotations[k] = v
	}
	must(t, e.c.Patch(e.ctx, ro, patch))
}
