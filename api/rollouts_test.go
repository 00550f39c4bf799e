package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestCreateGetList(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	r := e.call(t, http.MethodPost, "/api/v1/rollouts", operatorToken, strings.NewReader(createBody(ns, "checkout-v2", "checkout")))
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d: %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/rollouts/"+ns+"/checkout-v2" {
		t.Errorf("Location = %q", loc)
	}
	var created api.Rollout
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if created.Name != "checkout-v2" || !slices.Equal(created.Spec.Steps, []int32{10, 25, 50, 100}) {
		t.Errorf("created = %+v, want the defaulted object", created)
	}
	if n := len(e.stored(t, ns)); n != 1 {
		t.Fatalf("API server holds %d Rollouts, want 1", n)
	}

	// Read your writes: the answer to the create waited for the read
	// model, so a GET right after it finds the rollout.
	if g := e.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/checkout-v2", viewerToken, nil); g.status != http.StatusOK {
		t.Fatalf("GET right after the create: status %d: %s", g.status, g.body)
	}
	e.setPhase(t, ns, "checkout-v2", v1alpha1.PhaseProgressing)
	var got api.Rollout
	if err := json.Unmarshal(e.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/checkout-v2", viewerToken, nil).body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.VirtualService != "checkout" || got.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("GET = %+v", got)
	}

	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?namespace=" + ns, 1},
		{"?namespace=" + ns + "&phase=Progressing", 1},
		{"?namespace=" + ns + "&phase=Paused", 0},
		{"?namespace=" + ns + "&phase=Pending", 0},
		{"?namespace=nowhere", 0},
	} {
		r := e.call(t, http.MethodGet, "/api/v1/rollouts"+tc.query, viewerToken, nil)
		var l api.RolloutList
		if err := json.Unmarshal(r.body, &l); r.status != http.StatusOK || err != nil {
			t.Fatalf("list %s: status %d: %s", tc.query, r.status, r.body)
		}
		if len(l.Items) != tc.want {
			t.Errorf("list %s: %d items, want %d", tc.query, len(l.Items), tc.want)
		}
	}
	// The list holds the summary; the status comes only for one rollout.
	r = e.call(t, http.MethodGet, "/api/v1/rollouts?namespace="+ns, viewerToken, nil)
	var l api.RolloutList
	if err := json.Unmarshal(r.body, &l); err != nil || len(l.Items) != 1 {
		t.Fatalf("list: %s (%v)", r.body, err)
	}
	want := api.RolloutSummary{Namespace: ns, Name: "checkout-v2", Phase: v1alpha1.PhaseProgressing, Active: true, Step: "1/4",
		Target: "checkout: v1 → v2", CreatedAt: got.CreatedAt, UpdatedAt: got.CreatedAt, ResourceVersion: got.ResourceVersion}
	if l.Items[0] != want {
		t.Errorf("list item =\n %+v\nwant\n %+v", l.Items[0], want)
	}
	if strings.Contains(string(r.body), `"status"`) || l.Continue != "" {
		t.Errorf("list = %s, want summaries and no continue", r.body)
	}
	all := e.call(t, http.MethodGet, "/api/v1/rollouts", viewerToken, nil)
	if all.status != http.StatusOK || !strings.Contains(string(all.body), ns) {
		t.Errorf("list all: status %d, missing %s", all.status, ns)
	}
}

func TestCreateBadInput(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	big := `{"namespace":"` + ns + `","name":"big","spec":{"virtualService":"` + strings.Repeat("x", 2<<20) + `"}}`
	for _, tc := range []struct {
		name, body string
		status     int
		detail     string // a substring of error or details
	}{
		{"malformed JSON", `{"namespace":`, http.StatusBadRequest, "malformed"},
		{"not an object", `[1,2]`, http.StatusBadRequest, "malformed"},
		{"trailing data", createBody(ns, "a", "vs") + `{}`, http.StatusBadRequest, "malformed"},
		{"unknown field", `{"namespace":"` + ns + `","name":"a","colour":"red","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2"}}`, http.StatusBadRequest, "colour"},
		{"unknown spec field", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","weight":5}}`, http.StatusBadRequest, "weight"},
		{"wrong case", `{"Namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2"}}`, http.StatusBadRequest, "Namespace"},
		{"duplicate field", `{"namespace":"` + ns + `","name":"a","name":"b","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2"}}`, http.StatusBadRequest, "duplicate"},
		{"too large", big, http.StatusBadRequest, "larger than"},
		{"steps not increasing", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","steps":[50,25,100]}}`, http.StatusUnprocessableEntity, "strictly increasing"},
		{"both modes", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","stableHost":"a","canaryHost":"b"}}`, http.StatusUnprocessableEntity, "and only one of them"},
		{"no virtualService", `{"namespace":"` + ns + `","name":"a","spec":{"stableSubset":"v1","canarySubset":"v2"}}`, http.StatusUnprocessableEntity, "virtualService"},
		{"short stepInterval", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","stepInterval":"10ms"}}`, http.StatusUnprocessableEntity, "at least 1s"},
		{"unknown time zone", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","schedule":{"start":"0 22 * * *","timeZone":"Mars/Olympus"}}}`, http.StatusUnprocessableEntity, "spec.schedule.timeZone"},
		{"bad cron", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","schedule":{"windows":[{"start":"61 9 * * *","duration":"1h"}]}}}`, http.StatusUnprocessableEntity, "spec.schedule.windows[0].start"},
		{"custom query that does not render", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","analysis":{"custom":[{"name":"q","query":"up{x=\"{{ .Nope }}\"}","op":"<","threshold":1}]}}}`, http.StatusUnprocessableEntity, "spec.analysis.custom[q]"},
		{"custom query in another namespace", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","analysis":{"custom":[{"name":"q","query":"sum(up{namespace=\"kube-system\"})","op":"<","threshold":1}]}}}`, http.StatusUnprocessableEntity, "spec.analysis.custom[q].query"},
		{"custom query with no namespace", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","analysis":{"custom":[{"name":"q","query":"sum(up)","op":"<","threshold":1}]}}}`, http.StatusUnprocessableEntity, "namespace"},
		{"runbook not a URL", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","notifications":{"runbook":"javascript:alert(1)"}}}`, http.StatusUnprocessableEntity, "spec.notifications.runbook"},
		{"hostile template", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","analysis":{"custom":[{"name":"q","query":"up{{range 9000000000000000000}}{{end}}","op":"<","threshold":1}]}}}`, http.StatusUnprocessableEntity, "spec.analysis.custom[q]"},
		{"match override without a namespace", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","analysis":{"match":{"canary":{"destination_workload":"x"},"stable":{"destination_workload":"y"}}}}}`, http.StatusUnprocessableEntity, "spec.analysis.match"},
		{"schedule that never fires", `{"namespace":"` + ns + `","name":"a","spec":{"virtualService":"vs","stableSubset":"v1","canarySubset":"v2","schedule":{"start":"0 0 30 2 *"}}}`, http.StatusUnprocessableEntity, "never fires"},
		{"bad name", createBody(ns, "Not_A_Name", "vs"), http.StatusUnprocessableEntity, "name:"},
		{"no namespace", createBody("", "a", "vs"), http.StatusUnprocessableEntity, "namespace:"},
		{"missing namespace", createBody("nowhere", "a", "vs"), http.StatusUnprocessableEntity, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, http.MethodPost, "/api/v1/rollouts", operatorToken, strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			eb := r.errorBody(t)
			if text := eb.Error + " " + strings.Join(eb.Details, " | "); !strings.Contains(text, tc.detail) {
				t.Errorf("error %q does not mention %q", text, tc.detail)
			}
			if n := len(e.stored(t, ns)); n != 0 {
				t.Errorf("bad input wrote %d Rollouts", n)
			}
		})
	}
}

func TestCreateConflict(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustCreate(t, ns, "first", "checkout")

	for _, tc := range []struct{ name, body, detail string }{
		{"same route", createBody(ns, "second", "checkout"), "running rollout"},
		{"same name", createBody(ns, "first", "other"), "already exists"},
		{"named route vs any route", `{"namespace":"` + ns + `","name":"third","spec":{"virtualService":"checkout","route":"primary","stableSubset":"v1","canarySubset":"v2"}}`, "running rollout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, http.MethodPost, "/api/v1/rollouts", operatorToken, strings.NewReader(tc.body))
			if r.status != http.StatusConflict {
				t.Fatalf("status %d, want 409: %s", r.status, r.body)
			}
			if eb := r.errorBody(t); !strings.Contains(eb.Error, tc.detail) {
				t.Errorf("error %q, want it to mention %q", eb.Error, tc.detail)
			}
			if got := e.stored(t, ns); len(got) != 1 || got[0].Name != "first" || got[0].Spec.VirtualService != "checkout" {
				t.Errorf("conflicting create wrote something: %d Rollouts", len(got))
			}
		})
	}

	// A finished rollout does not hold the route.
	e.setPhase(t, ns, "first", v1alpha1.PhaseSucceeded)
	e.mustCreate(t, ns, "next", "checkout")
}

func TestGetErrors(t *testing.T) {
	e := getEnv(t)
	r := e.call(t, http.MethodGet, "/api/v1/rollouts/nowhere/nothing", viewerToken, nil)
	if r.status != http.StatusNotFound || !strings.Contains(r.errorBody(t).Error, "not found") {
		t.Errorf("GET missing: status %d: %s", r.status, r.body)
	}
	r = e.call(t, http.MethodGet, "/api/v1/rollouts?phase=Sleeping", viewerToken, nil)
	if r.status != http.StatusBadRequest || len(r.errorBody(t).Details) == 0 {
		t.Errorf("unknown phase: status %d: %s", r.status, r.body)
	}
	r = e.call(t, http.MethodGet, "/api/v1/nothing", viewerToken, nil)
	if r.status != http.StatusNotFound {
		t.Errorf("unknown path: status %d", r.status)
	}
	_ = r.errorBody(t)
	r = e.call(t, http.MethodDelete, "/api/v1/rollouts", operatorToken, nil)
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /rollouts: status %d", r.status)
	}
	_ = r.errorBody(t)
}

// get reads one Rollout straight from the API server.
func (e *env) get(t *testing.T, ns, name string) v1alpha1.Rollout {
	t.Helper()
	var r v1alpha1.Rollout
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	return r
}
