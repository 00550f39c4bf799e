package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestRetry: an operator's retry of a RolledBack or Aborted rollout is
// a request annotation naming who asked, answered with the rollout and
// audit-logged; the controller acts on it.
func TestRetry(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	for _, p := range []v1alpha1.Phase{v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted} {
		name := strings.ToLower(string(p))
		e.mustCreate(t, ns, name, "vs-"+name)
		e.setPhase(t, ns, name, p)
		r := e.call(t, http.MethodPost, "/api/v1/rollouts/"+ns+"/"+name+"/retry", operatorToken, nil)
		if r.status != http.StatusOK {
			t.Fatalf("retry of a %s rollout: status %d: %s", p, r.status, r.body)
		}
		var got api.Rollout
		if err := json.Unmarshal(r.body, &got); err != nil || got.Requests[v1alpha1.AnnotationRetry] != "true" {
			t.Errorf("answer %s (%v), want the rollout with its retry request", r.body, err)
		}
		if a := e.get(t, ns, name).Annotations; a[v1alpha1.AnnotationRetry] != "true" || a[v1alpha1.AnnotationRetryBy] != "olga" {
			t.Errorf("%s: annotations %v, want the retry by olga", p, a)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"verb":"retry"`) || !strings.Contains(logs, `"name":"aborted"`) {
		t.Errorf("the retries are not in the audit log:\n%s", logs)
	}
}

// TestRetryErrors: a retry of a rollout in any other phase, or onto a
// route another rollout holds, is a 409 that says why; a viewer's is a
// 403; nothing is written in any case.
func TestRetryErrors(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	for _, p := range []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed} {
		name := strings.ToLower(string(p))
		e.mustCreate(t, ns, name, "vs-"+name)
		if p != v1alpha1.PhasePending {
			e.setPhase(t, ns, name, p)
		}
	}
	// "first" rolled back on checkout; "second" has been under way on its
	// route since. (Created in the same second, they are ordered by name.)
	e.mustCreate(t, ns, "first", "checkout")
	e.setPhase(t, ns, "first", v1alpha1.PhaseRolledBack)
	e.mustCreate(t, ns, "second", "checkout")
	e.setPhase(t, ns, "second", v1alpha1.PhaseProgressing)
	before := map[string]string{}
	for _, r := range e.stored(t, ns) {
		before[r.Name] = r.ResourceVersion
	}
	retry := func(name string) string { return "/api/v1/rollouts/" + ns + "/" + name + "/retry" }
	for _, tc := range []struct {
		name, path, token string
		status            int
		detail            string
	}{
		{"pending", retry("pending"), operatorToken, http.StatusConflict, "is Pending: only a RolledBack or Aborted rollout can be retried"},
		{"progressing", retry("progressing"), operatorToken, http.StatusConflict, "is Progressing"},
		{"paused", retry("paused"), operatorToken, http.StatusConflict, "is Paused"},
		{"succeeded", retry("succeeded"), operatorToken, http.StatusConflict, "is Succeeded"},
		{"failed", retry("failed"), operatorToken, http.StatusConflict, "is Failed"},
		{"route held by a rollout under way", retry("first"), operatorToken, http.StatusConflict, "rollout " + ns + "/second"},
		{"viewer", retry("first"), viewerToken, http.StatusForbidden, "may not retry"},
		{"missing rollout", retry("ghost"), operatorToken, http.StatusNotFound, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, http.MethodPost, tc.path, tc.token, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if eb := r.errorBody(t); !strings.Contains(eb.Error+" "+strings.Join(eb.Details, " "), tc.detail) {
				t.Errorf("error %+v does not say %q", eb, tc.detail)
			}
			assertUnchanged(t, e, ns, before)
		})
	}

	// Once the other rollout is only waiting to start, and younger, the
	// retried one goes first.
	e.setPhase(t, ns, "second", v1alpha1.PhasePending)
	if r := e.call(t, http.MethodPost, retry("first"), operatorToken, nil); r.status != http.StatusOK {
		t.Errorf("retry with a younger rollout waiting on the route: status %d: %s", r.status, r.body)
	}
}
