package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
)

// ginParam matches a gin path parameter such as :ns.
var ginParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// openAPIDoc is the part of the document the tests read.
type openAPIDoc struct {
	OpenAPI    string                           `json:"openapi"`
	Paths      map[string]map[string]openAPIOp  `json:"paths"`
	Components struct{ Schemas map[string]any } `json:"components"`
	Security   []map[string][]string            `json:"security"`
}

type openAPIOp struct {
	OperationID string                      `json:"operationId"`
	Parameters  []struct{ Name, In string } `json:"parameters"`
	Responses   map[string]any              `json:"responses"`
	Security    *[]map[string][]string      `json:"security"`
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("global security = %v, want bearer", doc.Security)
	}
	routes := map[string]bool{}
	for _, r := range api.Routes() {
		path := ginParam.ReplaceAllString(r.Path, "{$1}")
		key := r.Method + " " + path
		routes[key] = true
		op, ok := doc.Paths[path][strings.ToLower(r.Method)]
		if !ok {
			t.Errorf("route %s is not in the document", key)
			continue
		}
		for _, m := range ginParam.FindAllStringSubmatch(r.Path, -1) {
			if !slices.ContainsFunc(op.Parameters, func(p struct{ Name, In string }) bool { return p.Name == m[1] && p.In == "path" }) {
				t.Errorf("%s: path parameter %s is not documented", key, m[1])
			}
		}
		public := path == "/api/v1/openapi.json"
		if _, has401 := op.Responses["401"]; has401 == public {
			t.Errorf("%s: documents 401 = %v, want %v", key, has401, !public)
		}
		if public && (op.Security == nil || len(*op.Security) != 0) {
			t.Errorf("%s: want security [] (no token)", key)
		}
		for code, resp := range op.Responses {
			if code[0] >= '4' && !strings.Contains(toJSON(resp), "#/components/schemas/ErrorBody") {
				t.Errorf("%s: response %s is not the error shape", key, code)
			}
		}
	}
	for path, item := range doc.Paths {
		for method := range item {
			if key := strings.ToUpper(method) + " " + path; !routes[key] {
				t.Errorf("the document describes %s, which is not a route", key)
			}
		}
	}
	for _, name := range []string{"ErrorBody", "Rollout", "RolloutSpec", "RolloutStatus", "CheckStatus", "Point", "RolloutEvent", "Summary", "RolloutList", "CreateRequest"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("schema %s is missing", name)
		}
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The document is served without a token.
func TestOpenAPIServed(t *testing.T) {
	e := getEnv(t)
	r := e.call(t, http.MethodGet, "/api/v1/openapi.json", "", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || string(r.body) != string(api.OpenAPI()) {
		t.Fatalf("GET openapi.json: status %d, %s", r.status, r.header.Get("Content-Type"))
	}
}

// The list's parameters and its summary's fields are documented.
func TestOpenAPIDocumentsTheList(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var params []string
	for _, p := range doc.Paths["/api/v1/rollouts"]["get"].Parameters {
		params = append(params, p.Name)
	}
	if want := []string{"namespace", "phase", "limit", "continue", "fields"}; !slices.Equal(params, want) {
		t.Errorf("GET /api/v1/rollouts parameters = %v, want %v", params, want)
	}
	summary, _ := doc.Components.Schemas["Summary"].(map[string]any)
	props, _ := summary["properties"].(map[string]any)
	for _, f := range readmodel.SummaryFields {
		if props[f] == nil {
			t.Errorf("the Summary schema lacks %s", f)
		}
	}
	if len(props) != len(readmodel.SummaryFields) {
		t.Errorf("the Summary schema has %d properties, want %d", len(props), len(readmodel.SummaryFields))
	}
	list := toJSON(doc.Components.Schemas["RolloutList"])
	if !strings.Contains(list, "#/components/schemas/Summary") || !strings.Contains(list, "continue") {
		t.Errorf("RolloutList = %s, want items of Summary and continue", list)
	}
}

// The release is documented: its body, its 202 and its refusals, and the
// view's releases and workload.
func TestOpenAPIDocumentsTheRelease(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	op, ok := doc.Paths["/api/v1/rollouts/{ns}/{name}/release"]["post"]
	if !ok {
		t.Fatal("POST .../release is not documented")
	}
	for _, code := range []string{"202", "400", "403", "404", "409", "422"} {
		if op.Responses[code] == nil {
			t.Errorf("the release does not document %s", code)
		}
	}
	if req := toJSON(doc.Components.Schemas["ReleaseRequest"]); !strings.Contains(req, `"images":{"additionalProperties":{"type":"string"},"type":"object"}`) {
		t.Errorf("ReleaseRequest = %s, want images as a map of strings", req)
	}
	var ro struct {
		Properties struct {
			Releases struct {
				Items struct {
					Ref string `json:"$ref"`
				}
			}
			// The workload has its own description beside the $ref, in an
			// allOf (OpenAPI 3.0 ignores a $ref's siblings).
			Workload struct {
				AllOf []struct {
					Ref string `json:"$ref"`
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(toJSON(doc.Components.Schemas["Rollout"])), &ro); err != nil {
		t.Fatal(err)
	}
	if got := ro.Properties.Releases.Items.Ref; got != "#/components/schemas/ReleaseView" {
		t.Errorf("the Rollout's releases are items of %q, want ReleaseView", got)
	}
	if w := ro.Properties.Workload.AllOf; len(w) != 1 || w[0].Ref != "#/components/schemas/WorkloadView" {
		t.Errorf("the Rollout's workload is %v, want a WorkloadView", w)
	}
}
