package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/deploy/crd"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The Rollout's spec and status are described by the CRD's own
// openAPIV3Schema, the schema the API server validates and defaults with,
// so that required fields, enums, defaults, bounds and descriptions in
// the OpenAPI document are the resource's own. The Go types only name the
// objects (components.schemas) and are checked against the CRD's
// properties by the tests.

// rolloutSchema is the openAPIV3Schema of the served version of the
// embedded Rollout CRD, as plain JSON values.
var rolloutSchema = sync.OnceValue(func() map[string]any {
	s, err := crdSchema(crd.Rollouts, v1alpha1.GroupVersion.Version)
	if err != nil {
		panic("api: the Rollout CRD: " + err.Error()) // embedded data: a bug, caught by the tests
	}
	return s
})

// crdSchema returns the openAPIV3Schema of version in the CRD manifest.
func crdSchema(manifest []byte, version string) (map[string]any, error) {
	data, err := yaml.YAMLToJSON(manifest)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var def struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &def); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	for _, v := range def.Spec.Versions {
		if v.Name == version && v.Schema.OpenAPIV3Schema != nil {
			return v.Schema.OpenAPIV3Schema, nil
		}
	}
	return nil, fmt.Errorf("no openAPIV3Schema for version %q", version)
}

// crdNode returns the node of the Rollout's schema at path: property names
// joined by dots, each followed by "[]" for its array's items, e.g.
// "status.analysis.checks[].verdict". It is nil when there is none.
func crdNode(path string) map[string]any {
	node := rolloutSchema()
	for _, seg := range strings.Split(path, ".") {
		name := strings.TrimRight(seg, "[]")
		props, _ := node["properties"].(map[string]any)
		node, _ = props[name].(map[string]any)
		for range strings.Count(seg[len(name):], "[]") {
			node, _ = node["items"].(map[string]any)
		}
		if node == nil {
			return nil
		}
	}
	return node
}

// fromCRD returns the OpenAPI 3.0 schema of Go type t as the CRD's
// structural schema s describes it. An object of a named Go struct becomes
// a component named after the type, and the value is a $ref to it; t may
// be nil (a nested schema with no Go type), and everything is inline.
func (g *schemas) fromCRD(t reflect.Type, s map[string]any) map[string]any {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := crdKeywords(s)
	if props, ok := s["properties"].(map[string]any); ok {
		fields := map[string]reflect.Type{}
		if t != nil && t.Kind() == reflect.Struct {
			for _, f := range jsonFields(t) {
				fields[f.name] = f.typ
			}
		}
		conv := make(map[string]any, len(props))
		for _, name := range sortedKeys(props) { // sorted: the first use of a shared type is always the same
			conv[name] = g.fromCRD(fields[name], props[name].(map[string]any))
		}
		out["properties"] = conv
	}
	if items, ok := s["items"].(map[string]any); ok {
		out["items"] = g.fromCRD(elem(t), items)
	}
	switch ap := s["additionalProperties"].(type) {
	case map[string]any:
		out["additionalProperties"] = g.fromCRD(elem(t), ap)
	case bool:
		out["additionalProperties"] = ap
	}
	if t == nil || t.Kind() != reflect.Struct || t.Name() == "" || out["properties"] == nil {
		return out
	}
	return g.component(t, out)
}

// component puts the object schema of the named struct t into
// components.schemas and returns a reference to it. The component carries
// the description of its first use; a use described otherwise (a field's
// own doc comment, which controller-gen prefers to the type's) gets its
// description beside the reference, in an allOf, since OpenAPI 3.0
// ignores the siblings of a $ref. A use whose schema differs otherwise
// stays inline, so that the document never says less than the CRD.
func (g *schemas) component(t reflect.Type, s map[string]any) map[string]any {
	desc, _ := s["description"].(string)
	name, known := g.names[t]
	if !known {
		name = t.Name()
		if _, taken := g.defs[name]; taken {
			name = strings.ReplaceAll(t.PkgPath(), "/", ".") + "." + t.Name()
		}
		g.names[t] = name
		g.defs[name] = s
	}
	def, _ := g.defs[name].(map[string]any)
	if !reflect.DeepEqual(withoutDescription(def), withoutDescription(s)) {
		return s
	}
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	if d, _ := def["description"].(string); d == desc {
		return ref
	}
	return map[string]any{"description": desc, "allOf": []any{ref}}
}

// crdKeywords converts the keywords of the structural schema s, except
// its properties, items and additionalProperties, to OpenAPI 3.0:
//   - x-kubernetes-int-or-string becomes anyOf an integer or a string;
//   - x-kubernetes-preserve-unknown-fields on an object becomes
//     additionalProperties: true (on a value of no type it is any value,
//     which a schema without a type already is);
//   - x-kubernetes-validations (CEL rules, which OpenAPI cannot express)
//     are appended to the description, message and rule;
//   - the other x-kubernetes-* extensions (list types and keys, embedded
//     resources) stay as extensions, which OpenAPI allows on any schema;
//   - value validations in allOf, anyOf, oneOf and not are converted too.
func crdKeywords(s map[string]any) map[string]any {
	out := make(map[string]any, len(s))
	for k, v := range s {
		switch k {
		case "properties", "items", "additionalProperties":
		case "x-kubernetes-validations":
			if rules := celRules(v); rules != "" {
				desc, _ := s["description"].(string)
				out["description"] = strings.TrimLeft(desc+"\n\n"+rules, "\n")
			}
		case "x-kubernetes-int-or-string":
			if v == true {
				out["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
			}
		case "x-kubernetes-preserve-unknown-fields":
			if _, has := s["additionalProperties"]; v == true && s["type"] == "object" && !has {
				out["additionalProperties"] = true
			}
		case "allOf", "anyOf", "oneOf":
			list, _ := v.([]any)
			conv := make([]any, 0, len(list))
			for _, sub := range list {
				m, _ := sub.(map[string]any)
				conv = append(conv, (&schemas{}).fromCRD(nil, m))
			}
			out[k] = conv
		case "not":
			m, _ := v.(map[string]any)
			out[k] = (&schemas{}).fromCRD(nil, m)
		default:
			if _, done := out[k]; !done { // a description may already hold the rules
				out[k] = v
			}
		}
	}
	return out
}

// celRules renders a list of x-kubernetes-validations for people.
func celRules(v any) string {
	list, _ := v.([]any)
	var lines []string
	for _, item := range list {
		rule, _ := item.(map[string]any)
		expr, _ := rule["rule"].(string)
		msg, _ := rule["message"].(string)
		if msg == "" {
			msg, _ = rule["messageExpression"].(string)
		}
		lines = append(lines, fmt.Sprintf("- %s (CEL: `%s`)", strings.TrimSuffix(msg, "."), expr))
	}
	if len(lines) == 0 {
		return ""
	}
	return "Rules the API server checks:\n" + strings.Join(lines, "\n")
}

func withoutDescription(s map[string]any) map[string]any {
	out := make(map[string]any, len(s))
	for k, v := range s {
		if k != "description" {
			out[k] = v
		}
	}
	return out
}

// elem is the element type of a slice, array or map type, or nil.
func elem(t reflect.Type) reflect.Type {
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return t.Elem()
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
