package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/serin-dev/serin/api/readmodel"
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
	events       string       // with stream: the events it sends
	errors       []int        // the error statuses the handler answers
	public       bool         // no bearer token needed
}

// queryParam is a query parameter; its schema is a string unless given.
type queryParam struct {
	name, description string
	schema            map[string]any
	enumOf            string // a string with the enum of this field of the CRD, e.g. status.phase
}

// Error statuses every authenticated operation may answer.
var authErrors = []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusInternalServerError}

// operations are the documented routes. TestOpenAPIMatchesRoutes checks
// them against the gin engine, both ways.
var operations = []operation{
	{method: "GET", path: "/api/v1/openapi.json", id: "getOpenAPI", summary: "This OpenAPI document. It needs no token.",
		status: 200, result: reflect.TypeFor[map[string]any](), public: true},
	{method: "GET", path: "/api/v1/rollouts", id: "listRollouts",
		summary: "List rollouts: a page of summaries (phase, step, weight, target, last verdict, a short reason; not the status), " +
			"active rollouts first, then by namespace and name. Follow \"continue\" for the next page. The full status is GET /api/v1/rollouts/{ns}/{name}. " +
			"A bad parameter is a 400 that names it. Needs list on rollouts.serin.dev (cluster-wide without a namespace).",
		query: []queryParam{
			{name: "namespace", description: "only this namespace"},
			{name: "phase", description: "only this phase: Pending (which includes rollouts the controller has not picked up yet), Progressing, Paused, Succeeded, RolledBack, Aborted or Failed",
				enumOf: "status.phase"},
			{name: "limit", description: fmt.Sprintf("the most items in the page: 1 to %d, default %d", MaxListLimit, DefaultListLimit),
				schema: map[string]any{"type": "integer", "minimum": 1, "maximum": MaxListLimit, "default": DefaultListLimit}},
			{name: "continue", description: "the \"continue\" of the previous page, with the same filters: the page starts after that page's last item. " +
				"It is a position, not a snapshot: a rollout that ends between two pages moves behind the active ones and may be seen twice or not at all."},
			{name: "fields", description: "a comma-separated selection of the summary's fields, e.g. name,phase,weight; each item then holds only these. " +
				"An unknown field is a 400 that names it. Fields: " + strings.Join(readmodel.SummaryFields, ", ")},
		},
		status: 200, result: reflect.TypeFor[RolloutList](), errors: []int{400, 403, 503}},
	{method: "POST", path: "/api/v1/rollouts", id: "createRollout", summary: "Start a rollout: create the Rollout resource. Needs create.",
		body: reflect.TypeFor[CreateRequest](), status: 201, result: reflect.TypeFor[Rollout](), errors: []int{400, 403, 409, 422, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}", id: "getRollout", summary: "One rollout: spec, status (the latest analysis per check and hop) and history. Needs get.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}/series", id: "getSeries", summary: "The rollout's recent analysis ticks, oldest first, for charts. Needs get.",
		status: 200, result: reflect.TypeFor[SeriesList](), errors: []int{403, 404, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}/traces/{traceID}", id: "getTrace",
		summary: "An example trace of one of the rollout's checks (status.analysis.checks[].traceID), read from Jaeger and laid out for a waterfall: " +
			"each span's offset and duration in µs, whether it failed, and which version (canary or stable) emitted it, as the analysis counted it, " +
			"with the canary's failed or slowest span on the check's hop marked. Only a trace the rollout's status names is served: any other ID is a 404. " +
			"501 when the server has no trace source; 502 when Jaeger cannot be asked. Needs get.",
		status: 200, result: reflect.TypeFor[TraceView](), errors: []int{403, 404, 501, 502, 503}},
	{method: "GET", path: "/api/v1/rollouts/{ns}/{name}/events", id: "streamRollout", stream: true, status: 200, errors: []int{403, 404, 429, 503},
		events: "event: rollout, data: RolloutEvent (first, whole); event: patch, data: a JSON merge patch (RFC 7386) from the previous event's RolloutEvent to the new one; event: deleted, data: DeletedEvent",
		summary: "Server-Sent Events: \"rollout\" (the whole RolloutEvent) first, then a \"patch\" per change: a JSON merge patch (RFC 7386) of the previous event's RolloutEvent, " +
			"holding only what changed (null for a member removed; arrays whole); \": ping\" comments every 15s, and \"deleted\" (a DeletedEvent) before the stream ends. " +
			"A client that falls behind, or does not take a write within 10s (by default), is dropped; reconnect, which starts again with a whole \"rollout\". " +
			"A user has at most 20 streams open (by default). Needs get."},
	{method: "GET", path: "/api/v1/events", id: "streamRollouts", stream: true, status: 200, errors: []int{403, 429, 503},
		query:  []queryParam{{name: "namespace", description: "only this namespace"}},
		events: "event: summary, data: Summary; event: deleted, data: DeletedEvent",
		summary: "Server-Sent Events for list views: a \"summary\" event (the list's Summary) per rollout now, in the list order, then one per change that shows something new " +
			"(a new resourceVersion alone sends nothing), \"deleted\" events, and \": ping\" comments. Needs list."},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/pause", id: "pauseRollout", summary: "Hold the rollout at its weight (spec.paused). Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/resume", id: "resumeRollout", summary: "Resume a paused rollout. Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/promote", id: "promoteRollout", summary: "Ask the controller to go to 100% now. Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/abort", id: "abortRollout", summary: "Ask the controller to abort, with a reason. Needs patch.",
		body: reflect.TypeFor[AbortRequest](), status: 200, result: reflect.TypeFor[Rollout](), errors: []int{400, 403, 404, 409, 422}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/retry", id: "retryRollout",
		summary: "Ask the controller to run a RolledBack or Aborted rollout again from its first step, with a fresh preflight and analysis; " +
			"409 in any other phase, or while another rollout holds its route. Needs patch.",
		status: 200, result: reflect.TypeFor[Rollout](), errors: []int{403, 404, 409, 503}},
	{method: "POST", path: "/api/v1/rollouts/{ns}/{name}/release", id: "releaseRollout",
		summary: "Release new images of the Deployment the rollout delivers (spec.workload): set the named containers' images of its pod template, " +
			"as kubectl set image does (a strategic merge patch by container name, field manager serin-api), and nothing else; " +
			"the controller then walks the new template through the steps. The answer is 202 with the rollout as it is now; " +
			"the release shows in releases once the controller has seen it. 409 for a rollout that delivers no Deployment, " +
			"or images the template already runs; 422 for an unknown container (the details name the template's) or an image that is not " +
			"an image reference. Needs get on the rollout and patch on the Deployment (deployments.apps).",
		body: reflect.TypeFor[ReleaseRequest](), status: 202, result: reflect.TypeFor[Rollout](), errors: []int{400, 403, 404, 409, 422, 501, 503}},
}

// statusText explains each status in the document.
var statusText = map[int]string{
	400: "Malformed JSON, unknown or duplicate fields, a body over the size limit, or a bad query parameter.",
	401: "No bearer token, or one that is not valid.",
	403: "The user may not do this.",
	404: "No such rollout (or, for a release, no such Deployment; for a trace, one the rollout's status does not name, or the trace store no longer has).",
	409: "A conflict: the name is taken, another rollout runs on the route, the rollout has finished (or, for a retry, is not RolledBack or Aborted), or it changed concurrently; " +
		"for a release, the rollout delivers no Deployment, or its template already runs these images.",
	422: "The request does not validate (the CRD's rules); details name the fields.",
	429: "Too many: the client's address has failed to authenticate too often (its bearer tokens are not checked for a while), or the user's event streams are at their cap. Retry after Retry-After seconds.",
	500: "An internal error; the cause is logged, not shown.",
	501: "This server was started without what the operation needs: a writer of Deployments, to release; a trace source (--jaeger-url), to read traces.",
	502: "The trace source (Jaeger) could not be asked, or its answer did not parse; retry.",
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
		schema := q.schema
		switch {
		case q.enumOf != "":
			schema = map[string]any{"type": "string", "enum": crdNode(q.enumOf)["enum"]}
		case schema == nil:
			schema = map[string]any{"type": "string"}
		}
		params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.description, "schema": schema})
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
		g.define(reflect.TypeFor[RolloutSummary]())
		g.define(reflect.TypeFor[DeletedEvent]())
		ok["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{
			"type": "string", "description": op.events,
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
