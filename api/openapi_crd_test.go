package api_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/deploy/crd"
)

// loadOpenAPI loads the document with kin-openapi and validates it as
// OpenAPI 3.0, examples and defaults included.
func loadOpenAPI(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("kin-openapi cannot load the document: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	return doc
}

func TestOpenAPIValidates(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
}

// crdRolloutSchema reads the Rollout CRD's openAPIV3Schema on its own,
// without the api package's reader.
func crdRolloutSchema(t testing.TB) map[string]any {
	t.Helper()
	var def struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(crd.Rollouts, &def); err != nil || len(def.Spec.Versions) != 1 {
		t.Fatalf("the CRD: %v (%d versions)", err, len(def.Spec.Versions))
	}
	return def.Spec.Versions[0].Schema.OpenAPIV3Schema
}

// docSchemas returns the document's components.schemas as JSON values.
func docSchemas(t testing.TB) map[string]any {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Components.Schemas
}

// expand resolves every $ref under s, and the allOf of one $ref that
// carries a use's own description, so that s reads as one inline schema.
func expand(t testing.TB, defs map[string]any, s map[string]any) map[string]any {
	t.Helper()
	if ref, ok := s["$ref"].(string); ok {
		def, ok := defs[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		if !ok || len(s) != 1 {
			t.Fatalf("$ref %s: no such component, or siblings beside it (%v)", ref, s)
		}
		return expand(t, defs, def)
	}
	if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
		inner := expand(t, defs, all[0].(map[string]any))
		out := map[string]any{}
		for k, v := range inner {
			out[k] = v
		}
		out["description"] = s["description"]
		return out
	}
	out := map[string]any{}
	for k, v := range s {
		out[k] = v
	}
	if props, ok := s["properties"].(map[string]any); ok {
		conv := map[string]any{}
		for name, p := range props {
			conv[name] = expand(t, defs, p.(map[string]any))
		}
		out["properties"] = conv
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := s[k].(map[string]any); ok {
			out[k] = expand(t, defs, sub)
		}
	}
	return out
}

// keywords that must be the CRD's, exactly, at every node.
var sameKeywords = []string{
	"type", "format", "enum", "default", "required", "pattern", "nullable",
	"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
	"minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties",
	"x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
}

// compareToCRD fails unless the document's node at path says all that the
// CRD's node says: the same keywords, the same description (with the CEL
// rules' messages after it), the same properties.
func compareToCRD(t *testing.T, path string, want, got map[string]any) {
	t.Helper()
	for _, k := range sameKeywords {
		if !reflect.DeepEqual(want[k], got[k]) {
			t.Errorf("%s: %s = %v, the CRD says %v", path, k, got[k], want[k])
		}
	}
	wantDesc, _ := want["description"].(string)
	gotDesc, _ := got["description"].(string)
	rules, _ := want["x-kubernetes-validations"].([]any)
	if len(rules) == 0 && gotDesc != wantDesc || !strings.HasPrefix(gotDesc, wantDesc) {
		t.Errorf("%s: description = %q, the CRD says %q", path, gotDesc, wantDesc)
	}
	for _, r := range rules {
		rule := r.(map[string]any)
		if !strings.Contains(gotDesc, rule["message"].(string)) || !strings.Contains(gotDesc, rule["rule"].(string)) {
			t.Errorf("%s: the description lacks the rule %q: %q", path, rule["message"], gotDesc)
		}
	}
	if _, ok := got["x-kubernetes-validations"]; ok {
		t.Errorf("%s: x-kubernetes-validations left in the document", path)
	}
	if want["x-kubernetes-int-or-string"] == true && got["anyOf"] == nil {
		t.Errorf("%s: int-or-string without anyOf", path)
	}
	if want["x-kubernetes-preserve-unknown-fields"] == true && want["type"] == "object" && got["additionalProperties"] != true {
		t.Errorf("%s: preserve-unknown-fields without additionalProperties: true", path)
	}
	wantProps, _ := want["properties"].(map[string]any)
	gotProps, _ := got["properties"].(map[string]any)
	if !slices.Equal(keys(wantProps), keys(gotProps)) {
		t.Errorf("%s: properties %v, the CRD has %v", path, keys(gotProps), keys(wantProps))
	}
	for name, w := range wantProps {
		if g, ok := gotProps[name].(map[string]any); ok {
			compareToCRD(t, path+"."+name, w.(map[string]any), g)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		w, _ := want[k].(map[string]any)
		g, _ := got[k].(map[string]any)
		switch {
		case w != nil && g != nil:
			compareToCRD(t, path+"."+k, w, g)
		case w != nil || g != nil:
			t.Errorf("%s: %s = %v, the CRD says %v", path, k, g, w)
		}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// counted are the required fields, enums, defaults and descriptions under
// a schema.
type counted struct{ required, enums, defaults, descriptions int }

func count(s map[string]any) counted {
	var c counted
	req, _ := s["required"].([]any)
	c.required = len(req)
	if s["enum"] != nil {
		c.enums++
	}
	if _, ok := s["default"]; ok {
		c.defaults++
	}
	if s["description"] != nil {
		c.descriptions++
	}
	var subs []any
	if props, ok := s["properties"].(map[string]any); ok {
		for _, p := range props {
			subs = append(subs, p)
		}
	}
	subs = append(subs, s["items"], s["additionalProperties"])
	for _, sub := range subs {
		if m, ok := sub.(map[string]any); ok {
			n := count(m)
			c.required, c.enums, c.defaults, c.descriptions = c.required+n.required, c.enums+n.enums, c.defaults+n.defaults, c.descriptions+n.descriptions
		}
	}
	return c
}

// The document's RolloutSpec and RolloutStatus, references resolved, are
// the CRD's spec and status: every required field, enum, default, bound
// and description, node by node, and the same counts.
func TestOpenAPISpecAndStatusAreTheCRD(t *testing.T) {
	crdSchema := crdRolloutSchema(t)
	defs := docSchemas(t)
	for _, tc := range []struct{ component, crdField string }{{"RolloutSpec", "spec"}, {"RolloutStatus", "status"}} {
		want := crdSchema["properties"].(map[string]any)[tc.crdField].(map[string]any)
		def, ok := defs[tc.component].(map[string]any)
		if !ok {
			t.Fatalf("no component %s", tc.component)
		}
		got := expand(t, defs, def)
		compareToCRD(t, tc.crdField, want, got)

		w, g := count(want), count(got)
		t.Logf("%s: %d required, %d enums, %d defaults, %d descriptions (the CRD's %s: %d, %d, %d, %d)",
			tc.component, g.required, g.enums, g.defaults, g.descriptions, tc.crdField, w.required, w.enums, w.defaults, w.descriptions)
		if g.required != w.required || g.enums != w.enums || g.defaults != w.defaults {
			t.Errorf("%s has %d required, %d enums and %d defaults; the CRD's %s has %d, %d and %d",
				tc.component, g.required, g.enums, g.defaults, tc.crdField, w.required, w.enums, w.defaults)
		}
		if g.descriptions < w.descriptions {
			t.Errorf("%s has %d descriptions, the CRD's %s %d", tc.component, g.descriptions, tc.crdField, w.descriptions)
		}
	}
	if w := count(crdSchema["properties"].(map[string]any)["spec"].(map[string]any)); w.required == 0 || w.enums == 0 {
		t.Errorf("the CRD's spec has %d required fields and %d enums: the counts prove nothing", w.required, w.enums)
	}
}

// The request body of a create holds the CRD's spec: a client generated
// from the document refuses what the API server would.
func TestOpenAPICreateTakesTheCRDSpec(t *testing.T) {
	doc := loadOpenAPI(t)
	create := doc.Components.Schemas["CreateRequest"].Value
	spec := create.Properties["spec"]
	if spec.Ref != "#/components/schemas/RolloutSpec" {
		t.Fatalf("CreateRequest.spec = %q, want the RolloutSpec", spec.Ref)
	}
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{`{"virtualService":"checkout","stableSubset":"v1","canarySubset":"v2"}`, true},
		{`{"stableSubset":"v1","canarySubset":"v2"}`, false},                                                // virtualService is required
		{`{"virtualService":"checkout","analysis":{"onInconclusive":"Shrug"}}`, false},                      // not in the enum
		{`{"virtualService":"checkout","steps":[10,200]}`, false},                                           // above the maximum
		{`{"virtualService":"checkout","analysis":{"custom":[{"name":"x","op":"<","query":"up"}]}}`, false}, // threshold is required
		{`{"virtualService":"checkout","analysis":{"custom":[{"name":"x","op":"<","query":"up","threshold":1}]}}`, true},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.spec), &v); err != nil {
			t.Fatal(err)
		}
		err := spec.Value.VisitJSON(v)
		if (err == nil) != tc.ok {
			t.Errorf("spec %s: validation error %v, want ok = %v", tc.spec, err, tc.ok)
		}
	}
}
