package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// validated sends requests to the API and checks each request and its
// answer against the document's operation, with kin-openapi.
type validated struct {
	e      *env
	router routers.Router
}

func newValidated(t *testing.T) validated {
	t.Helper()
	router, err := gorillamux.NewRouter(loadOpenAPI(t))
	if err != nil {
		t.Fatalf("route the document: %v", err)
	}
	return validated{e: getEnv(t), router: router}
}

// call sends the request, wants status, and fails unless the request and
// the answer (status, headers and body) are what the document describes.
func (v validated) call(t *testing.T, method, path, token, body string, status int) response {
	t.Helper()
	return v.send(t, method, path, token, body, status, true)
}

// refused is call for a request that the document refuses too: a client
// checking its requests against the document never sends it.
func (v validated) refused(t *testing.T, method, path, token, body string, status int) response {
	t.Helper()
	return v.send(t, method, path, token, body, status, false)
}

func (v validated) send(t *testing.T, method, path, token, body string, status int, valid bool) response {
	t.Helper()
	r := v.e.call(t, method, path, token, strings.NewReader(body))
	if r.status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	switch err := openapi3filter.ValidateRequest(t.Context(), in); {
	case valid && err != nil:
		t.Errorf("%s %s: the request does not match the document: %v", method, path, err)
	case !valid && err == nil:
		t.Errorf("%s %s: the document allows the request the API refuses", method, path)
	}
	err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s %s: the %d answer does not match the document: %v\n%s", method, path, r.status, err, r.body)
	}
	return r
}

// Real answers of the API over the real API server match the document:
// a create, a get, the list (whole and with fields), an action, the
// series, a release, a rollout with a full status, and the errors.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	v := newValidated(t)
	ns := v.e.namespace(t)
	base := "/api/v1/rollouts/" + ns

	v.call(t, "POST", "/api/v1/rollouts", operatorToken, createBody(ns, "checkout-v2", "checkout"), http.StatusCreated)
	eventually(t, "the read model to see the rollout", func() bool { _, ok := v.e.store.Get(ns, "checkout-v2"); return ok })
	v.call(t, "GET", base+"/checkout-v2", viewerToken, "", http.StatusOK)
	v.call(t, "GET", "/api/v1/rollouts?namespace="+ns, viewerToken, "", http.StatusOK)
	v.call(t, "GET", "/api/v1/rollouts?namespace="+ns+"&phase=Pending&fields=name,phase&limit=1", viewerToken, "", http.StatusOK)
	v.call(t, "POST", base+"/checkout-v2/pause", operatorToken, "", http.StatusOK)
	v.call(t, "POST", base+"/checkout-v2/abort", operatorToken, `{"reason":"p99 too high"}`, http.StatusOK)
	v.call(t, "GET", base+"/checkout-v2/series", viewerToken, "", http.StatusOK)
	v.call(t, "GET", "/api/v1/openapi.json", "", "", http.StatusOK)

	// A status with every part the controller writes, through the status
	// subresource (which the CRD validates), shown by GET and the list.
	writeFullStatus(t, v.e, ns, "checkout-v2")
	v.call(t, "GET", base+"/checkout-v2", viewerToken, "", http.StatusOK)
	v.call(t, "GET", "/api/v1/rollouts?namespace="+ns, viewerToken, "", http.StatusOK)

	// A delivered Deployment: the workload and its releases, and a release.
	v.e.mustDeploy(t, ns, "shop")
	v.call(t, "POST", "/api/v1/rollouts", operatorToken, workloadBody(ns, "shop", "shop", "shop"), http.StatusCreated)
	eventually(t, "the read model to see the workload rollout", func() bool { _, ok := v.e.store.Get(ns, "shop"); return ok })
	writeWorkloadStatus(t, v.e, ns, "shop")
	v.call(t, "GET", base+"/shop", viewerToken, "", http.StatusOK)
	v.call(t, "POST", base+"/shop/release", operatorToken, `{"images":{"checkout":"shop/checkout:2.1"}}`, http.StatusAccepted)

	// The errors: the CRD's rules (the last step must be 100), a missing
	// rollout, a finished one, a bad parameter, and no token.
	bad := `{"namespace":"` + ns + `","name":"bad","spec":{"virtualService":"x","stableSubset":"v1","canarySubset":"v2","steps":[10,50]}}`
	if r := v.call(t, "POST", "/api/v1/rollouts", operatorToken, bad, http.StatusUnprocessableEntity); !strings.Contains(string(r.body), "100") {
		t.Errorf("the 422 does not name the rule: %s", r.body)
	}
	v.call(t, "GET", base+"/ghost", viewerToken, "", http.StatusNotFound)
	v.call(t, "POST", base+"/ghost/pause", operatorToken, "", http.StatusNotFound)
	v.call(t, "POST", base+"/checkout-v2/retry", operatorToken, "", http.StatusConflict)
	v.refused(t, "GET", "/api/v1/rollouts?limit=0", viewerToken, "", http.StatusBadRequest)
	v.refused(t, "GET", "/api/v1/rollouts?phase=Done", viewerToken, "", http.StatusBadRequest)
	v.refused(t, "POST", "/api/v1/rollouts", operatorToken, `{"namespace":"`+ns+`","name":"novs","spec":{"stableSubset":"v1","canarySubset":"v2"}}`,
		http.StatusUnprocessableEntity) // virtualService is required
	v.refused(t, "POST", "/api/v1/rollouts", operatorToken, `{"namespace":"`+ns+`","name":"enum","spec":{"virtualService":"x","stableSubset":"v1","canarySubset":"v2","analysis":{"onInconclusive":"Shrug"}}}`,
		http.StatusUnprocessableEntity) // not in the CRD's enum
	v.call(t, "GET", base+"/checkout-v2", "", "", http.StatusUnauthorized)
}

// update changes ns/name's status through the status subresource and
// waits until the read model has the new resourceVersion.
func update(t *testing.T, e *env, ns, name string, change func(*v1alpha1.RolloutStatus)) {
	t.Helper()
	var r v1alpha1.Rollout
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	change(&r.Status)
	if err := e.kube.Status().Update(t.Context(), &r); err != nil {
		t.Fatalf("update the status of %s/%s: %v", ns, name, err)
	}
	eventually(t, "the read model to see the status", func() bool {
		got, ok := e.store.Get(ns, name)
		return ok && got.ResourceVersion == r.ResourceVersion
	})
}

func writeFullStatus(t *testing.T, e *env, ns, name string) {
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	update(t, e, ns, name, func(s *v1alpha1.RolloutStatus) {
		*s = v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, Step: "2/4", CanaryWeight: 25, AppliedWeight: 25,
			StepStartedAt: &now, WeightConfirmedAt: &now, ObservedGeneration: 1,
			Message: "analysing step 2/4",
			Target:  &v1alpha1.ResolvedTarget{Route: "primary", Host: "checkout", StableVersion: "v1", CanaryVersion: "v2"},
			Conditions: []metav1.Condition{{Type: "Preflight", Status: metav1.ConditionTrue, Reason: "Resolved",
				Message: "route primary", LastTransitionTime: now, ObservedGeneration: 1}},
			History: []v1alpha1.Transition{{Time: now, From: "Pending 0/4", To: "Progressing 1/4 (10%)", Reason: "Started", Message: "preflight passed"}},
			Analysis: v1alpha1.AnalysisStatus{
				LastTickAt: &now, Since: &now, CleanSince: &now, LastVerdict: "Fail", LastReason: "error rate 5% vs 0.5%", PassedTicks: 3,
				Checks: []v1alpha1.CheckStatus{
					{Check: "error-rate", Kind: "error-rate", Source: "prometheus", Verdict: "Fail", Canary: 5, CanaryLow: 4, CanaryHigh: 6,
						Stable: 0.5, Limit: 1, Unit: "%", CanaryRequests: 400, StableRequests: 1200, Evidence: 150, Threshold: 100,
						EvidenceAtSeconds: 12, Reason: "above stable"},
					{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Pass", DryRun: true,
						Canary: 120, Stable: 110, Limit: 300, Unit: "ms", CanaryRequests: 50, StableRequests: 60, TraceID: "abc", Reason: "within"},
				},
				History: []v1alpha1.AnalysisTick{{Time: now, Verdict: "Fail", Reason: "error rate"}},
			},
		}
	})
}

func writeWorkloadStatus(t *testing.T, e *env, ns, name string) {
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	update(t, e, ns, name, func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.Step = v1alpha1.PhaseProgressing, "1/4"
		s.Workload = &v1alpha1.WorkloadStatus{AdoptedAt: &now, Replicas: 2, StableRevision: "5d8f", Release: "6a7b", ReleaseStartedAt: &now}
		s.Releases = []v1alpha1.Release{
			{Revision: "5d8f", Images: map[string]string{"checkout": "shop/checkout:2.0"}, StartedAt: now, FinishedAt: &now, Outcome: "Succeeded", By: "olga"},
			{Revision: "6a7b", Images: map[string]string{"checkout": "shop/checkout:2.1"}, StartedAt: now},
		}
	})
}
