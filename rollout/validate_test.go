package rollout

import (
	"errors"
	"strings"
	"testing"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func withCustom(query string) v1alpha1.RolloutSpec {
	sp := spec()
	sp.Analysis = &v1alpha1.AnalysisSpec{Custom: []v1alpha1.CustomCheck{{Name: "queue-depth", Query: query, Op: "<", Threshold: 100}}}
	return sp
}

// TestValidateSpecRefusesHostileTemplates: the template that froze the
// controller is refused, naming the field, by what the REST API calls.
func TestValidateSpecRefusesHostileTemplates(t *testing.T) {
	err := ValidateSpec(withCustom(`up{{range 9000000000000000000}}{{end}}`))
	if !errors.Is(err, analysis.ErrQueryTemplate) || !strings.HasPrefix(err.Error(), "spec.analysis.custom[queue-depth].query: ") ||
		!strings.Contains(err.Error(), "{{range 9000000000000000000}}") {
		t.Fatalf("ValidateSpec = %v, want ErrQueryTemplate naming spec.analysis.custom[queue-depth].query and the action", err)
	}
}

func TestValidateSpecInScopesQueriesAndMatch(t *testing.T) {
	shop := (*analysis.Tenancy)(nil).Scope("shop")
	granted := (&analysis.Tenancy{Namespaces: map[string]analysis.TenantGrant{"shop": {AllowNamespaces: []string{"shared-metrics"}}}}).Scope("shop")
	readme := `max(queue_depth{namespace="{{ .Namespace }}", version="{{ .CanaryVersion }}"})`
	e2e := `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ .Namespace }}",` +
		`destination_service_name="{{ .Service }}",destination_version="{{ .CanaryVersion }}"}[{{ .Window }}]))`
	match := func(canary, stable map[string]string) v1alpha1.RolloutSpec {
		sp := spec()
		sp.Analysis = &v1alpha1.AnalysisSpec{Match: &v1alpha1.MatchOverride{Canary: canary, Stable: stable}}
		return sp
	}
	own := map[string]string{"destination_workload": "checkout-v1", "destination_workload_namespace": "shop"}
	for _, tc := range []struct {
		name  string
		spec  v1alpha1.RolloutSpec
		scope analysis.Scope
		want  string
	}{
		{"the README's query", withCustom(readme), shop, ""},
		{"the e2e test's query", withCustom(e2e), shop, ""},
		{"mesh-wide", withCustom(`sum(up)`), shop, `spec.analysis.custom[queue-depth].query: selects series outside the rollout's namespaces: selector up{} has no matcher on a namespace label`},
		{"mesh-wide, namespace unknown", withCustom(`sum(up)`), analysis.Scope{}, `spec.analysis.custom[queue-depth].query: `},
		{"another namespace", withCustom(`x{namespace="bank"}`), shop, `selects namespace "bank"`},
		{"another namespace, granted", withCustom(`x{namespace="shared-metrics"}`), granted, ""},
		{"a match in the namespace", match(own, own), shop, ""},
		{"a match with no namespace", match(map[string]string{"destination_workload": "checkout-v2"}, own), shop,
			"spec.analysis.match.canary: selects series outside the rollout's namespaces: a match must include destination_workload_namespace: shop"},
		{"a match of another namespace", match(own, map[string]string{"destination_workload_namespace": "bank"}), shop, `spec.analysis.match.stable: `},
		{"a match with no namespace, namespace unknown", match(own, map[string]string{"app": "x"}), analysis.Scope{}, `spec.analysis.match.stable: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSpecIn(tc.spec, tc.scope)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("ValidateSpecIn = %v, want %q", err, tc.want)
			}
			if tc.want != "" && tc.scope.Known() && !errors.Is(err, analysis.ErrOutOfScope) {
				t.Fatalf("ValidateSpecIn = %v, want ErrOutOfScope", err)
			}
		})
	}
}

// TestStoredOutOfScopeQueryFails: a Rollout stored with a query outside
// its tenancy scope (kubectl apply bypasses the REST API) fails its
// preflight, naming the field, before anything is written; and the
// analysis of one whose spec changed refuses to run it.
func TestStoredOutOfScopeQueryFails(t *testing.T) {
	ro := &v1alpha1.Rollout{Spec: withCustom(`sum(rate(istio_requests_total{destination_workload_namespace="bank"}[1m]))`)}
	ro.Namespace, ro.Name = "shop", "checkout"
	e := &Engine{o: Options{}}
	var pf PreflightReport
	e.checkAnalysisSpec(ro, &pf)
	d := Next(v1alpha1.RolloutStatus{}, ro.Spec, Observation{Generation: 1, Preflight: &pf, Created: t0}, t0)
	if d.Status.Phase != v1alpha1.PhaseFailed || d.Status.CanaryWeight != 0 ||
		!strings.Contains(d.Status.Message, `spec.analysis.custom[queue-depth].query: selects series outside the rollout's namespaces`) {
		t.Fatalf("%s weight %d %q: want Failed naming the field", d.Status.Phase, d.Status.CanaryWeight, d.Status.Message)
	}
	res := e.analyze(t.Context(), ro, t0)
	if res.Verdict != analysis.Inconclusive || !strings.Contains(res.Reason, "spec.analysis.custom[queue-depth].query") {
		t.Fatalf("analyze = %s %q, want Inconclusive naming the field (never run)", res.Verdict, res.Reason)
	}
	// Granted by the operator, the same query passes.
	e.o.Tenancy = &analysis.Tenancy{Namespaces: map[string]analysis.TenantGrant{"shop": {AllowNamespaces: []string{"bank"}}}}
	pf = PreflightReport{}
	if e.checkAnalysisSpec(ro, &pf); !pf.OK() {
		t.Fatalf("granted: %v", pf.Failures)
	}
}
