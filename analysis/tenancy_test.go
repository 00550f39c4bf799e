package analysis

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckQueryScopesEverySelector(t *testing.T) {
	shop := Scope{Namespace: "shop"}
	granted := Scope{Namespace: "shop", Also: []string{"shared-metrics"}}
	vars := map[string]string{"Namespace": "shop", "Window": "30s", "CanaryVersion": Unknown, "Service": Unknown}
	tests := []struct {
		name  string
		query string
		scope Scope
		want  string // "" passes
	}{
		{"own namespace", `max(queue_depth{namespace="{{ .Namespace }}", version="{{ .CanaryVersion }}"})`, shop, ""},
		{"Istio's label, a range and a subquery",
			`sum(rate(istio_requests_total{destination_workload_namespace="shop"}[{{ .Window }}])) / max_over_time(up{kubernetes_namespace="shop"}[5m:30s])`, shop, ""},
		{"source side", `sum(rate(istio_requests_total{source_workload_namespace="shop"}[1m]))`, shop, ""},
		{"a plain name outside strings", `{{ .Service }}_queue{namespace="shop"}`, shop, ""},
		{"an equality among others scopes it", `x{namespace="shop", destination_workload_namespace=~".+"}`, shop, ""},
		{"no matcher", `up`, shop, `selector up{} has no matcher on a namespace label (one of namespace, destination_workload_namespace, source_workload_namespace, kubernetes_namespace) equal to "shop"`},
		{"only other labels", `sum(up{job="kubelet"})`, shop, `selector up{job="kubelet"} has no matcher`},
		{"the second side of an or", `up{namespace="shop"} or up{job="x"}`, shop, `selector up{job="x"} has no matcher`},
		{"inside a function", `absent(node_load1)`, shop, `selector node_load1{} has no matcher`},
		{"by name only", `{__name__=~".+"}`, shop, `has no matcher`},
		{"a regular expression", `x{namespace=~"shop|bank"}`, shop, `matches namespace with =~; only an equality (namespace="shop")`},
		{"a negation", `x{namespace!="shop"}`, shop, `matches namespace with !=`},
		{"another namespace", `x{namespace="bank"}`, shop, `selector x{namespace="bank"} selects namespace "bank"; this rollout may select "shop"`},
		{"an empty namespace", `x{namespace=""}`, shop, `namespace="" selects series without that label`},
		{"granted", `x{namespace="shared-metrics"}`, granted, ""},
		{"not granted", `x{namespace="bank"}`, granted, `may select one of "shop", "shared-metrics"`},
		{"a namespace from a value not known yet", `x{namespace="{{ .Service }}"}`, shop, `selects namespace "serin_unknown_value"`},
		{"a namespace built from a value", `x{namespace="sh{{ .CanaryVersion }}"}`, shop, `selects namespace`},
		{"no PromQL", `x{namespace="shop"`, shop, `does not parse as PromQL`},
		{"an experimental function", `info(x{namespace="shop"}, {namespace="shop"})`, shop, `does not parse as PromQL`},
		{"a hostile template", `up{{range 9000000000000000000}}{{end}}`, shop, `only {{ .Name }} placeholders`},
		// Before the rollout's namespace is known, every namespace
		// equality passes; the rest is refused as above.
		{"unknown scope: any equality", `x{namespace="bank"}`, Scope{}, ""},
		{"unknown scope: no matcher", `up`, Scope{}, `has no matcher`},
		{"unknown scope: a regular expression", `x{namespace=~".*"}`, Scope{}, `matches namespace with =~`},
		{"unknown scope: empty", `x{namespace=""}`, Scope{}, `selects series without that label`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckQuery(tc.query, vars, tc.scope)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckQuery(%s) = %v, want it to pass", tc.query, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckQuery(%s) = %v, want an error containing %q", tc.query, err, tc.want)
			case tc.want != "" && !errors.Is(err, ErrOutOfScope) && !errors.Is(err, ErrQueryTemplate):
				t.Fatalf("CheckQuery(%s) = %v, want ErrOutOfScope or ErrQueryTemplate", tc.query, err)
			}
		})
	}
}

func TestCheckMatch(t *testing.T) {
	shop := Scope{Namespace: "shop", Also: []string{"mesh"}}
	for _, tc := range []struct {
		match map[string]string
		scope Scope
		want  string
	}{
		{map[string]string{"destination_workload": "checkout-v2", "destination_workload_namespace": "shop"}, shop, ""},
		{map[string]string{"destination_workload": "checkout-v2", "destination_workload_namespace": "mesh"}, shop, ""},
		{map[string]string{"destination_workload": "checkout-v2"}, shop, "a match must include destination_workload_namespace: shop"},
		{map[string]string{"destination_workload_namespace": ""}, shop, "a match must include"},
		{map[string]string{"destination_workload_namespace": "bank"}, shop, `destination_workload_namespace "bank": this rollout may select one of "shop", "mesh"`},
		{map[string]string{"destination_workload_namespace": "bank"}, Scope{}, ""},
		{map[string]string{"destination_workload": "x"}, Scope{}, "a match must include"},
	} {
		err := CheckMatch(tc.match, tc.scope)
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrOutOfScope) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckMatch(%v, %v) = %v, want %q", tc.match, tc.scope, err, tc.want)
		}
	}
}

func TestTenancyScope(t *testing.T) {
	pol, err := ParseTenancy([]byte(`
namespaces:
  team-a:
    allowNamespaces: [shared-metrics, team-b]
  "*":
    allowNamespaces: [istio-system]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := pol.Scope("team-a"); got.Namespace != "team-a" || strings.Join(got.Also, ",") != "istio-system,shared-metrics,team-b" {
		t.Errorf("Scope(team-a) = %+v", got)
	}
	if got := pol.Scope("shop"); strings.Join(got.Also, ",") != "istio-system" {
		t.Errorf("Scope(shop) = %+v, want the grant of \"*\"", got)
	}
	var none *Tenancy
	if got := none.Scope("shop"); got.Namespace != "shop" || len(got.Also) != 0 {
		t.Errorf("nil policy: Scope(shop) = %+v, want its own namespace only", got)
	}
}

func TestParseTenancyRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"namespaces: {team-a: {allowNamespace: [x]}}", `unknown field "allowNamespace"`},
		{"namespace: {}", `unknown field "namespace"`},
		{"namespaces: {Team_A: {}}", `"Team_A" is not a namespace name`},
		{`namespaces: {team-a: {allowNamespaces: ["*"]}}`, `namespaces[team-a].allowNamespaces[0]: "*" is not a namespace name`},
		{"namespaces: [", "yaml"},
	} {
		if _, err := ParseTenancy([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTenancy(%s) = %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "tenancy.yaml")
	if err := os.WriteFile(path, []byte("namespaces: {team-a: {allow: []}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTenancy(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadTenancy = %v, want an error naming %s", err, path)
	}
	if _, err := LoadTenancy(path + ".missing"); err == nil || !strings.Contains(err.Error(), path+".missing") {
		t.Errorf("LoadTenancy of a missing file = %v, want an error naming it", err)
	}
}
