package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// operation describes one route for the OpenAPI document.
type operation struct {
	method, path string // path in OpenAPI syntax: /api/v1/rollouts/{ns}/{name}
	id, summary  string
	query        []queryParam
	body         reflect.Type // request body type, nil for none
	status       int          // the success status
	result       reflect.Type // its JSON body; nil with stream
	stream       bool         // a text/event-stream answer
	errors       []int        // the error statuses the handler answers
	public       bool         // no bearer token needed
}

type queryParam struct{ name, description string }

// Error statuses every authenticated operation may answer.
var authErrors = []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusInternalServerError}

// operations are the documented routes. TestOpenAPIMatchesRoutes checks
// them against the gin engine, both ways.
var operations = []operation{
	{method: "GET", path: "/api/v1/openapi.json", id: "getOpenAPI", summary: "This OpenAPI document. It needs no token.",
		status: 200, result: reflect.TypeFor[map[string]any](), public: true},
	{method: "GET", path: "/api/v1/rollouts", id: "listRollouts", summary: "List rollouts, sorted by namespace and name. Needs list on rollouts.serin.dev (cluster-wide without a namespace).",
		query:  []queryParam{{"namespace", "only this namespace"}, {"phase", "only this phase: Pending, Progressing, Paused, Succeeded, RolledBack, Aborted or Failed"}},
		status: 200, result: reflect.TypeFor[RolloutList](), errors: []int{400, 403, 503}},
	{method: "POST", path: "/api/v1/rollouts", id: "createRollout", summary: "Start a rollout: create the Rollout resource. Needs create.",
		body: reflect.TypeFor[CreateRequest](), status: 201, result: reflect.TypeFor[Rollout](), errors: []int{400, 403, 409, 422, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}", id: "getRollout", summary: "One rollout: spec, status (the latest analysis per check and hop) and history. Needs get.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}/series", id: "getSeries", summary: "The rollout's recent analysis ticks, oldest first, for charts. Needs get.",
		status: 200, result: reflect.TypeFor[SeriesList](), errors: []int{403, 404, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}/events", id: "streamRollout", stream: true, status: 200, errors: []int{403, 404, 429, 503},
		summary: "Server-Sent Events: \"rollout\" (a RolloutEvent) now and on each change, \": ping\" comments every 15s, and \"deleted\" (a DeletedEvent) before the stream ends. A client that falls behind, or does not take a write within 10s (by default), is dropped; reconnect. A user has at most 20 streams open (by default). Needs get."},
	{method: "GET", path: "/api/v1/events", id: "streamRollouts", stream: true, status: 200, errors: []int{403, 429, 503},
		query:   []queryParam{{"namespace", "only this namespace"}},
		summary: "Server-Sent Events for list views: a \"rollout\" event per rollout now, then one per change, \"deleted\" events, and \": ping\" comments. Needs list."},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/pause", id: "pauseRollout", summary: "Hold the rollout at its weight (spec.paused). Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/resume", id: "resumeRollout", summary: "Resume a paused rollout. Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/promote", id: "promoteRollout", summary: "Ask the controller to go to 100% now. Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/abort", id: "abortRollout", summary: "Ask the controller to abort, with a reason. Needs patch.",
		body: reflect.TypeFor[AbortRequest](), status: 200, result: reflect.TypeFor[Rollout](), errors: []int{400, 403, 404, 409, 422}},
}

// statusText explains each status in the document.
var statusText = map[int]string{
	400: "Malformed JSON, unknown or duplicate fields, a body over the size limit, or a bad query parameter.",
	401: "No bearer token, or one that is not valid.",
	403: "The user may not do this.",
	404: "No such rollout.",
	409: "A conflict: the name is taken, another rollout runs on the route, the rollout has finished, or it changed concurrently.",
	422: "The request does not validate (the CRD's rules); details name the fields.",
	429: "Too many: the client's address has failed to authenticate too often (its bearer tokens are not checked for a while), or the user's event streams are at their cap. Retry after Retry-After seconds.",
	500: "An internal error; the cause is logged, not shown.",
	503: "The read model is still loading; retry (Retry-After).",
}

// openAPIDoc is the document, built once.
var openAPIDoc = sync.OnceValue(func() []byte {
	b, err := json.Marshal(buildOpenAPI())
	if err != nil {
		panic("api: OpenAPI document: " + err.Error()) // static data: a bug, caught by the tests
	}
	return b
})

// OpenAPI returns the API's OpenAPI 3.0 document as JSON.
func OpenAPI() []byte { return openAPIDoc() }

func (s *server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", OpenAPI())
}

func buildOpenAPI() map[string]any {
	g := newSchemas()
	g.define(reflect.TypeFor[ErrorBody]())
	paths := map[string]any{}
	for _, op := range operations {
		item, _ := paths[op.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.path] = item
		}
		item[strings.ToLower(op.method)] = op.document(g)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":   "serin API",
			"version": "v1",
			"description": "Progressive delivery of Istio canaries. Every endpoint except this document needs " +
				"a bearer token (or the web console's session cookie). Errors are {\"error\": ..., \"details\": [...]}.",
		},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"schemas":         g.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

// document returns op's OpenAPI operation object.
func (op operation) document(g *schemas) map[string]any {
	var params []any
	for _, seg := range strings.Split(op.path, "/") {
		if strings.HasPrefix(seg, "{") {
			name := strings.Trim(seg, "{}")
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
	}
	for _, q := range op.query {
		params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.description, "schema": map[string]any{"type": "string"}})
	}
	doc := map[string]any{"operationId": op.id, "summary": op.summary, "responses": op.responses(g)}
	if len(params) > 0 {
		doc["parameters"] = params
	}
	if op.body != nil {
		doc["requestBody"] = map[string]any{"required": true, "content": jsonContent(g.of(op.body))}
	}
	if op.public {
		doc["security"] = []any{}
	}
	return doc
}

func (op operation) responses(g *schemas) map[string]any {
	ok := map[string]any{"description": http.StatusText(op.status)}
	switch {
	case op.stream:
		g.define(reflect.TypeFor[RolloutEvent]())
		g.define(reflect.TypeFor[DeletedEvent]())
		ok["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{
			"type": "string", "description": "event: rollout, data: RolloutEvent; event: deleted, data: DeletedEvent",
		}}}
	case op.result != nil:
		ok["content"] = jsonContent(g.of(op.result))
	}
	if op.status == http.StatusCreated {
		ok["headers"] = map[string]any{"Location": map[string]any{"description": "the new rollout's URL", "schema": map[string]any{"type": "string"}}}
	}
	out := map[string]any{strconv.Itoa(op.status): ok}
	errs := op.errors
	if !op.public {
		errs = append(append([]int(nil), authErrors...), errs...)
	}
	for _, code := range errs {
		out[strconv.Itoa(code)] = map[string]any{
			"description": statusText[code],
			"content":     jsonContent(map[string]any{"$ref": "#/components/schemas/ErrorBody"}),
		}
	}
	return out
}

func jsonContent(schema map[string]any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}
