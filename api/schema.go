package api

import (
	"reflect"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// schemas builds OpenAPI 3.0 schemas from the Go types of the JSON shapes,
// so that the document follows the types instead of a hand copy that
// drifts. The Rollout's spec and status are the CRD's own schema
// (schema_crd.go); the API's views carry the CRD's description and enum
// on each field that shows a field of the resource (schema_views.go).
type schemas struct {
	defs  map[string]any          // components.schemas
	names map[reflect.Type]string // type -> its name in defs
}

func newSchemas() *schemas {
	return &schemas{defs: map[string]any{}, names: map[reflect.Type]string{}}
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	metaTimeType = reflect.TypeFor[metav1.Time]()
	durationType = reflect.TypeFor[metav1.Duration]()
	specType     = reflect.TypeFor[v1alpha1.RolloutSpec]()
	statusType   = reflect.TypeFor[v1alpha1.RolloutStatus]()
)

// of returns the schema of t: inline for scalars, slices and maps, a $ref
// to components.schemas for named structs.
func (g *schemas) of(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType, metaTimeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType:
		return map[string]any{"type": "string", "description": "a Go duration, e.g. 30s or 1m30s"}
	case specType:
		return g.fromCRD(t, crdNode("spec"))
	case statusType:
		return g.fromCRD(t, crdNode("status"))
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Uint16, reflect.Int8, reflect.Uint8:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		return map[string]any{"$ref": "#/components/schemas/" + g.define(t)}
	}
	return map[string]any{} // any value
}

// define adds the struct t to defs, once, and returns its name.
func (g *schemas) define(t reflect.Type) string {
	if n, ok := g.names[t]; ok {
		return n
	}
	name := t.Name()
	if _, taken := g.defs[name]; taken || name == "" {
		name = strings.ReplaceAll(t.PkgPath(), "/", ".") + "." + t.Name()
	}
	g.names[t] = name
	props := map[string]any{}
	g.fields(t, props)
	g.defs[name] = map[string]any{"type": "object", "properties": props}
	return name
}

// fields adds the JSON properties of struct t to props, with the
// descriptions and enums of schema_views.go.
func (g *schemas) fields(t reflect.Type, props map[string]any) {
	for _, f := range jsonFields(t) {
		props[f.name] = g.documented(f.owner, f.name, g.of(f.typ))
	}
}

// jsonField is one member of a struct's JSON object.
type jsonField struct {
	name  string
	typ   reflect.Type
	owner reflect.Type // the struct that declares it, which may be embedded in t
}

// jsonFields lists the JSON members of struct t as encoding/json writes
// them, flattening embedded structs.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" && f.Anonymous {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: f.Type, owner: t})
	}
	return out
}
