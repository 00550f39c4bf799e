package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestActions(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustCreate(t, ns, "ro", "checkout")
	base := "/api/v1/rollouts/" + ns + "/ro/"
	post := func(op, body string) {
		t.Helper()
		r := e.call(t, http.MethodPost, base+op, operatorToken, strings.NewReader(body))
		if r.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", op, r.status, r.body)
		}
	}

	post("pause", "")
	if r := e.get(t, ns, "ro"); !r.Spec.Paused {
		t.Error("pause did not set spec.paused")
	} else if got, want := r.Annotations[v1alpha1.AnnotationPausedBy], fmt.Sprintf("%d/olga", r.Generation); got != want {
		// The generation the pause made: the controller credits it to olga there only.
		t.Errorf("paused-by = %q, want %q", got, want)
	}
	// Read your writes: the answer waited for the read model.
	var seen api.Rollout
	if g := e.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/ro", viewerToken, nil); g.status != http.StatusOK ||
		json.Unmarshal(g.body, &seen) != nil || !seen.Spec.Paused {
		t.Errorf("GET right after the pause: status %d, paused %v: %s", g.status, seen.Spec.Paused, g.body)
	}
	post("resume", "")
	if r := e.get(t, ns, "ro"); r.Spec.Paused {
		t.Error("resume did not clear spec.paused")
	} else if got, want := r.Annotations[v1alpha1.AnnotationPausedBy], fmt.Sprintf("%d/olga", r.Generation); got != want {
		t.Errorf("paused-by after the resume = %q, want %q", got, want)
	}
	post("promote", "")
	if a := e.get(t, ns, "ro").Annotations; a[v1alpha1.AnnotationPromote] != "true" || a[v1alpha1.AnnotationPromoteBy] != "olga" {
		t.Errorf("promote annotations = %v", a)
	}
	post("abort", `{"reason":"p99 too high"}`)
	if a := e.get(t, ns, "ro").Annotations; a[v1alpha1.AnnotationAbort] != "p99 too high" || a[v1alpha1.AnnotationAbortBy] != "olga" {
		t.Errorf("abort annotations = %v", a)
	}
	logs := e.logs.String()
	for _, want := range []string{`"msg":"audit"`, `"user":"olga"`, `"verb":"abort"`, `"reason":"p99 too high"`, `"verb":"pause"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(logs, operatorToken) {
		t.Error("the audit log contains a token")
	}
}

func TestActionErrors(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustCreate(t, ns, "ro", "checkout")
	e.mustCreate(t, ns, "done", "other")
	e.setPhase(t, ns, "done", v1alpha1.PhaseRolledBack)
	before := map[string]string{}
	for _, r := range e.stored(t, ns) {
		before[r.Name] = r.ResourceVersion
	}
	for _, tc := range []struct {
		name, path, body string
		status           int
		detail           string
	}{
		{"missing rollout", "/api/v1/rollouts/" + ns + "/ghost/pause", "", http.StatusNotFound, "not found"},
		{"abort malformed", "/api/v1/rollouts/" + ns + "/ro/abort", `{"reason":`, http.StatusBadRequest, "malformed"},
		{"abort unknown field", "/api/v1/rollouts/" + ns + "/ro/abort", `{"reason":"x","force":true}`, http.StatusBadRequest, "force"},
		{"abort without reason", "/api/v1/rollouts/" + ns + "/ro/abort", `{"reason":"  "}`, http.StatusUnprocessableEntity, "reason"},
		{"abort reason too long", "/api/v1/rollouts/" + ns + "/ro/abort", `{"reason":"` + strings.Repeat("r", 2000) + `"}`, http.StatusUnprocessableEntity, "too long"},
		{"abort body too large", "/api/v1/rollouts/" + ns + "/ro/abort", `{"reason":"` + strings.Repeat("r", 2<<20) + `"}`, http.StatusBadRequest, "larger than"},
		{"pause finished", "/api/v1/rollouts/" + ns + "/done/pause", "", http.StatusConflict, "finished"},
		{"promote finished", "/api/v1/rollouts/" + ns + "/done/promote", "", http.StatusConflict, "finished"},
		{"abort finished", "/api/v1/rollouts/" + ns + "/done/abort", `{"reason":"x"}`, http.StatusConflict, "finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, http.MethodPost, tc.path, operatorToken, strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if eb := r.errorBody(t); !strings.Contains(eb.Error+strings.Join(eb.Details, " "), tc.detail) {
				t.Errorf("error %+v does not mention %q", eb, tc.detail)
			}
			assertUnchanged(t, e, ns, before)
		})
	}
}

// assertUnchanged checks that the Rollouts of ns are exactly those of
// before, at the same resourceVersions.
func assertUnchanged(t *testing.T, e *env, ns string, before map[string]string) {
	t.Helper()
	after := e.stored(t, ns)
	if len(after) != len(before) {
		t.Errorf("%d Rollouts now, %d before", len(after), len(before))
	}
	for _, r := range after {
		if before[r.Name] != r.ResourceVersion {
			t.Errorf("Rollout %s was written (resourceVersion %s -> %s)", r.Name, before[r.Name], r.ResourceVersion)
		}
	}
}

func TestAuth(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustCreate(t, ns, "ro", "checkout")
	before := map[string]string{"ro": e.get(t, ns, "ro").ResourceVersion}
	ro := "/api/v1/rollouts/" + ns + "/ro"
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"no token, read", http.MethodGet, "/api/v1/rollouts", "", "", http.StatusUnauthorized},
		{"no token, abort", http.MethodPost, ro + "/abort", "", `{"reason":"x"}`, http.StatusUnauthorized},
		{"bad token, read", http.MethodGet, ro, "not-a-token", "", http.StatusUnauthorized},
		{"bad token, create", http.MethodPost, "/api/v1/rollouts", "not-a-token", createBody(ns, "new", "other"), http.StatusUnauthorized},
		{"viewer abort", http.MethodPost, ro + "/abort", viewerToken, `{"reason":"x"}`, http.StatusForbidden},
		{"viewer pause", http.MethodPost, ro + "/pause", viewerToken, "", http.StatusForbidden},
		{"viewer promote", http.MethodPost, ro + "/promote", viewerToken, "", http.StatusForbidden},
		{"viewer create", http.MethodPost, "/api/v1/rollouts", viewerToken, createBody(ns, "new", "other"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, tc.method, tc.path, tc.token, strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			_ = r.errorBody(t)
			if tc.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			assertUnchanged(t, e, ns, before)
		})
	}
	if r := e.call(t, http.MethodGet, ro, viewerToken, nil); r.status != http.StatusOK {
		t.Errorf("viewer read: status %d", r.status)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"user":"victor"`) || !strings.Contains(logs, `"status":403`) {
		t.Error("the refused viewer mutation is not in the audit log")
	}
	if strings.Contains(logs, viewerToken) || strings.Contains(logs, "not-a-token") {
		t.Error("the audit log contains a token")
	}
}
