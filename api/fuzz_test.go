package api_test

import (
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// FuzzCreateRollout sends arbitrary bodies to POST /api/v1/rollouts over
// the real API server. Whatever the body, the API must not fail with a
// 5xx (a panic is recovered as a 500), and a refused body must write
// nothing anywhere.
func FuzzCreateRollout(f *testing.F) {
	for _, seed := range []string{
		`{"namespace":"fuzz","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2"}}`,
		`{"namespace":"fuzz","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","steps":[50,25,100]}}`,
		`{"namespace":"fuzz","name":"a","spec":{"virtualService":"vs","stableHost":"a","canaryHost":"a"}}`,
		`{"namespace":"fuzz","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","stepInterval":"1x"}}`,
		`{"namespace":"fuzz","name":"a","spec":{"virtualService":"vs","analysis":{"custom":[{"name":"Q","op":"!","query":""}]}}}`,
		`{"namespace":"fuzz","name":"a","spec":null}`,
		`{"namespace":"fuzz","name":"a","extra":1}`,
		`{"namespace":"fuzz","name":"","spec":{}}`,
		`{"namespace":"../x","name":"a/b","spec":{}}`,
		`{"namespace":1}`,
		`{"namespace":"fuzz"`,
		`[]`, `null`, ``, `"x"`, "\x00\xff",
	} {
		f.Add(seed)
	}
	e := getEnv(f)
	fuzzNS := &corev1.Namespace{}
	fuzzNS.Name = "fuzz"
	if err := e.kube.Create(f.Context(), fuzzNS); client.IgnoreAlreadyExists(err) != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		before := countAll(t, e)
		r := e.call(t, http.MethodPost, "/api/v1/rollouts", operatorToken, strings.NewReader(body))
		if r.status >= 500 && r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", r.status, body, r.body)
		}
		if r.status == http.StatusCreated {
			cleanup(t, e, r)
			return
		}
		_ = r.errorBody(t)
		if after := countAll(t, e); after != before {
			t.Fatalf("refused body (status %d) changed the number of Rollouts from %d to %d: %q", r.status, before, after, body)
		}
	})
}

// countAll counts the Rollouts in every namespace, on the API server.
func countAll(t *testing.T, e *env) int {
	t.Helper()
	return len(e.stored(t, ""))
}

// cleanup deletes a Rollout the fuzzer managed to create, so that the
// next input starts from the same state.
func cleanup(t *testing.T, e *env, r response) {
	t.Helper()
	loc := strings.TrimPrefix(r.header.Get("Location"), "/api/v1/rollouts/")
	nsName := strings.SplitN(loc, "/", 2)
	if len(nsName) != 2 {
		t.Fatalf("201 without a usable Location: %q", loc)
	}
	ro := &v1alpha1.Rollout{}
	ro.Namespace, ro.Name = nsName[0], nsName[1]
	if err := e.kube.Delete(t.Context(), ro); client.IgnoreNotFound(err) != nil {
		t.Fatalf("delete fuzz Rollout %s: %v", loc, err)
	}
}
