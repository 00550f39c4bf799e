package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

// noResourceFields are the view types that show no field of the Rollout
// resource, so they need no viewDoc.
var noResourceFields = map[reflect.Type]string{
	reflect.TypeFor[ErrorBody]():      "an error",
	reflect.TypeFor[CreateRequest]():  "the identity of a new Rollout, and the spec (the CRD's own)",
	reflect.TypeFor[AbortRequest]():   "a reason for people, which becomes an annotation",
	reflect.TypeFor[ReleaseRequest](): "images to set on the Deployment, not on the Rollout",
	reflect.TypeFor[DeletedEvent]():   "the identity of a deleted rollout",
	reflect.TypeFor[RolloutList]():    "a page of Summaries",
	reflect.TypeFor[SeriesList]():     "a list of Points",
	reflect.TypeFor[RolloutEvent]():   "a Rollout (documented as the Rollout) and a Point",
	reflect.TypeFor[DueView]():        "times computed from the spec and status by the controller's rules (rollout.DueOf)",
	reflect.TypeFor[SpanView]():       "a span of a trace read from Jaeger",
}

// viewTypes are the structs of the API's answers and bodies that are
// described from Go: those of the operations and the events, and their
// fields', down to the Rollout's spec and status, which are the CRD's.
func viewTypes() map[reflect.Type]bool {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t == specType || t == statusType || t == timeType || t == metaTimeType {
			return
		}
		seen[t] = true
		for _, f := range jsonFields(t) {
			walk(f.typ)
		}
	}
	for _, op := range operations {
		for _, t := range []reflect.Type{op.body, op.result} {
			if t != nil {
				walk(t)
			}
		}
	}
	for _, t := range []reflect.Type{reflect.TypeFor[RolloutEvent](), reflect.TypeFor[RolloutSummary](), reflect.TypeFor[DeletedEvent](), reflect.TypeFor[ErrorBody]()} {
		walk(t)
	}
	return seen
}

// Every view type has decided which of its fields show the resource's, and
// each such field carries the CRD's description and enum in the document.
func TestViewsCarryTheCRD(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for vt := range viewTypes() {
		if _, ok := viewDocs[vt]; !ok && noResourceFields[vt] == "" {
			t.Errorf("%s is neither in viewDocs nor in noResourceFields: say which of its fields show the Rollout's", vt)
		}
	}
	carried := 0
	for vt, d := range viewDocs {
		origin := crdNode(d.origin)
		if origin == nil {
			t.Errorf("%s: origin %s is not in the CRD", vt, d.origin)
			continue
		}
		for name, p := range d.renamed {
			if crdNode(p) == nil {
				t.Errorf("%s.%s: %s is not in the CRD", vt, name, p)
			}
		}
		fields := map[string]bool{}
		for _, f := range jsonFields(vt) {
			fields[f.name] = true
		}
		originProps, _ := origin["properties"].(map[string]any)
		for name := range d.differ {
			if !fields[name] || originProps[name] == nil {
				t.Errorf("%s.%s differs from %s.%s, but one of them does not exist", vt, name, d.origin, name)
			}
		}
		props := doc.Components.Schemas[vt.Name()].Properties
		if props == nil {
			t.Errorf("%s has no component %s", vt, vt.Name())
			continue
		}
		for name := range fields {
			path := d.renamed[name]
			if _, differs := d.differ[name]; path == "" && !differs && originProps[name] != nil {
				path = d.origin + "." + name
			}
			got := props[name]
			switch {
			case path != "":
				want := crdNode(path)
				if got["description"] != want["description"] || !reflect.DeepEqual(got["enum"], want["enum"]) {
					t.Errorf("%s.%s shows %s: description %q and enum %v, the CRD's %q and %v",
						vt, name, path, got["description"], got["enum"], want["description"], want["enum"])
				}
				carried++
			case d.differ[name] != "":
				if got["description"] != d.differ[name] {
					t.Errorf("%s.%s: description %q, want %q", vt, name, got["description"], d.differ[name])
				}
			}
		}
	}
	if carried < 20 {
		t.Errorf("only %d view fields carry the CRD's description", carried)
	}
}
