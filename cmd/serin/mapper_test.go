package main

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// countingMapper counts the RESTMapping calls that reach it.
type countingMapper struct {
	meta.RESTMapper
	calls int
}

func (c *countingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	c.calls++
	return c.RESTMapper.RESTMapping(gk, versions...)
}

// A kind's mapping is asked of the mapper beneath once and then
// remembered, each caller getting its own copy; a kind not found is not
// remembered.
func TestMemoMapper(t *testing.T) {
	gv := schema.GroupVersion{Group: "serin.dev", Version: "v1alpha1"}
	base := meta.NewDefaultRESTMapper([]schema.GroupVersion{gv})
	base.Add(gv.WithKind("Rollout"), meta.RESTScopeNamespace)
	c := &countingMapper{RESTMapper: base}
	m := memoize(c)
	gk := schema.GroupKind{Group: "serin.dev", Kind: "Rollout"}
	for range 3 {
		r, err := m.RESTMapping(gk, "v1alpha1")
		if err != nil || r.Scope.Name() != meta.RESTScopeNameNamespace || r.Resource.Resource != "rollouts" {
			t.Fatalf("RESTMapping = %+v, %v; want the namespaced rollouts", r, err)
		}
		r.Resource.Resource = "changed by a caller"
	}
	if c.calls != 1 {
		t.Errorf("%d calls reached the mapper beneath, want 1", c.calls)
	}
	missing := schema.GroupKind{Group: "serin.dev", Kind: "Missing"}
	for range 2 {
		if _, err := m.RESTMapping(missing); !meta.IsNoMatchError(err) {
			t.Errorf("RESTMapping of a kind not served = %v, want a no-match error", err)
		}
	}
	if c.calls != 3 {
		t.Errorf("%d calls reached the mapper beneath, want the missing kind asked each time (3)", c.calls)
	}
}
