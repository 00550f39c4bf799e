package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/serin-dev/serin/analysis/jaeger"
	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// traceJaeger is a Jaeger query API on httptest: it answers
// /api/v3/traces/{id} with the canned trace of that ID (OTLP JSON, as
// Jaeger v1.76 writes it), Jaeger's own 404 for any other, and HTTP 500
// while down is set. It counts what it was asked.
type traceJaeger struct {
	traces map[string]string // trace ID -> answer body
	down   atomic.Bool
	asked  atomic.Int64
}

func (j *traceJaeger) start(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/api/v3/traces/")
		if !ok {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		j.asked.Add(1)
		body, found := j.traces[id]
		switch {
		case j.down.Load():
			http.Error(w, "storage unavailable", http.StatusInternalServerError)
		case !found:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"httpCode":404,"message":"trace not found"}}`))
		default:
			_, _ = w.Write([]byte(body))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// otlpSpan is a canned span: its resource (service, version) and the span.
type otlpSpan struct {
	id, parent, svc, ver, name string
	kind                       int
	startMs, durMs             float64
	status                     int // http.status_code, 0 for none
}

// otlpTrace renders spans of trace id as Jaeger's API v3 answer.
func otlpTrace(t *testing.T, id string, spans ...otlpSpan) string {
	t.Helper()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var rss []any
	for _, s := range spans {
		start := t0.Add(time.Duration(s.startMs * float64(time.Millisecond)))
		end := start.Add(time.Duration(s.durMs * float64(time.Millisecond)))
		sp := map[string]any{"traceId": id, "spanId": s.id, "parentSpanId": s.parent, "name": s.name, "kind": s.kind,
			"startTimeUnixNano": strconv.FormatInt(start.UnixNano(), 10), "endTimeUnixNano": strconv.FormatInt(end.UnixNano(), 10)}
		if s.status != 0 {
			sp["attributes"] = []any{map[string]any{"key": "http.status_code", "value": map[string]any{"intValue": strconv.Itoa(s.status)}}}
		}
		rss = append(rss, map[string]any{
			"resource": map[string]any{"attributes": []any{
				map[string]any{"key": "service.name", "value": map[string]any{"stringValue": s.svc}},
				map[string]any{"key": "service.version", "value": map[string]any{"stringValue": s.ver}},
			}},
			"scopeSpans": []any{map[string]any{"spans": []any{sp}}},
		})
	}
	b, err := json.Marshal(map[string]any{"result": map[string]any{"resourceSpans": rss}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// slowCanaryTrace is frontend → checkout v2 → payments, in which checkout
// v2's call to payments takes 480 ms.
func slowCanaryTrace(t *testing.T, id string) string {
	return otlpTrace(t, id,
		otlpSpan{id: "00000000000000f0", svc: "frontend", ver: "v1", name: "GET /buy", kind: 2, durMs: 500},
		otlpSpan{id: "00000000000000f1", parent: "00000000000000f0", svc: "frontend", ver: "v1", name: "POST checkout", kind: 3, startMs: 1, durMs: 495},
		otlpSpan{id: "00000000000000c0", parent: "00000000000000f1", svc: "checkout", ver: "v2", name: "POST /checkout", kind: 2, startMs: 2, durMs: 490},
		otlpSpan{id: "00000000000000c1", parent: "00000000000000c0", svc: "checkout", ver: "v2", name: "POST payments", kind: 3, startMs: 5, durMs: 480, status: 200},
		otlpSpan{id: "00000000000000a0", parent: "00000000000000c1", svc: "payments", ver: "v7", name: "POST /pay", kind: 2, startMs: 6, durMs: 478, status: 200},
	)
}

// namespaceOnly lets user "nina" act in one namespace only, and everyone
// else as the static tokens say: a reader of one tenant's rollouts.
type namespaceOnly struct {
	api.Authorizer
	ns string
}

func (a namespaceOnly) Authorize(ctx context.Context, u api.User, act api.Action) (bool, error) {
	if u.Name == "nina" {
		return act.Verb == "get" && act.Namespace == a.ns, nil
	}
	return a.Authorizer.Authorize(ctx, u, act)
}

const ninaToken = "nina-token-0123456789"

// TestTracesServesTheRolloutsExampleTraces reads a check's example trace
// through the API, from a Jaeger query API on httptest, with the real
// read model: a viewer gets the waterfall's spans with checkout v2's slow
// call to payments marked, and the answer matches the OpenAPI document;
// an ID the status does not name, a rollout that does not exist and a
// trace Jaeger no longer has are 404s (the first two without asking
// Jaeger); a Jaeger that fails is a 502; no token is a 401, a reader of
// another namespace a 403; and a server without a trace source answers
// 501.
func TestTracesServesTheRolloutsExampleTraces(t *testing.T) {
	shared := getEnv(t)
	ns := shared.namespace(t)
	shared.mustCreate(t, ns, "checkout-v2", "checkout")
	const id, gone = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
	update(t, shared, ns, "checkout-v2", func(s *v1alpha1.RolloutStatus) {
		s.Phase = v1alpha1.PhaseRolledBack
		s.Target = &v1alpha1.ResolvedTarget{Route: "primary", Host: "checkout", StableVersion: "v1", CanaryVersion: "v2"}
		s.Analysis.Checks = []v1alpha1.CheckStatus{
			{Check: "error-rate", Hop: "checkout → payments", Source: "jaeger", Verdict: "Pass", Unit: "%", TraceID: id, Reason: "within"},
			{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail", Kind: "latency-p99",
				Canary: 480, Stable: 40, Limit: 120, Unit: "ms", TraceID: id, Reason: "slow"},
			{Check: "latency-p99", Hop: "frontend → checkout", Source: "jaeger", Verdict: "Pass", Unit: "ms", TraceID: gone, Reason: "within"},
		}
	})

	j := &traceJaeger{traces: map[string]string{id: slowCanaryTrace(t, id)}}
	jsrv := j.start(t)
	src, err := jaeger.New(jaeger.Options{QueryURL: jsrv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := api.ParseStaticTokens(strings.NewReader(operatorToken + ",olga,operator\n" + viewerToken + ",victor,viewer\n" + ninaToken + ",nina,viewer\n"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Store: shared.store, Writer: api.KubeWriter{Client: shared.kube}, Authenticator: tokens,
		Authorizer: namespaceOnly{Authorizer: tokens, ns: "elsewhere"}, Traces: src, Log: slog.New(slog.NewJSONHandler(shared.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	router, err := gorillamux.NewRouter(loadOpenAPI(t))
	if err != nil {
		t.Fatalf("route the document: %v", err)
	}
	v := validated{e: &env{srv: srv, kube: shared.kube, store: shared.store, logs: shared.logs}, router: router}
	base := "/api/v1/rollouts/" + ns + "/checkout-v2/traces/"

	r := v.call(t, "GET", base+strings.ToUpper(id), viewerToken, "", http.StatusOK)
	var tv api.TraceView
	if err := json.Unmarshal(r.body, &tv); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if tv.TraceID != id || tv.Hop != "checkout → payments" || tv.Check != "latency-p99" || tv.Side != "canary" || tv.DurationUs != 500_000 {
		t.Errorf("trace %s hop %q check %q side %q duration %d µs, want %s, the failing latency check's hop, canary, 500000",
			tv.TraceID, tv.Hop, tv.Check, tv.Side, tv.DurationUs, id)
	}
	var rows []string
	for _, s := range tv.Spans {
		rows = append(rows, fmt.Sprintf("%s%s·%s +%d %d %s", strings.Repeat(">", s.Depth), s.Service, s.Operation, s.StartOffsetUs, s.DurationUs, s.Version))
	}
	want := []string{"frontend·GET /buy +0 500000 ", ">frontend·POST checkout +1000 495000 ", ">>checkout·POST /checkout +2000 490000 canary",
		">>>checkout·POST payments +5000 480000 canary", ">>>>payments·POST /pay +6000 478000 "}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("spans:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	if tv.Marked != "00000000000000c1" || tv.Mark != "slowest" {
		t.Errorf("marked %q (%s), want checkout v2's call to payments (slowest)", tv.Marked, tv.Mark)
	}
	asked := j.asked.Load()

	v.call(t, "GET", base+"ffffffffffffffffffffffffffffffff", viewerToken, "", http.StatusNotFound)
	v.call(t, "GET", base+"..%2F..%2Fservices", viewerToken, "", http.StatusNotFound)
	v.call(t, "GET", "/api/v1/rollouts/"+ns+"/ghost/traces/"+id, viewerToken, "", http.StatusNotFound)
	if n := j.asked.Load(); n != asked {
		t.Errorf("IDs the status does not name sent %d requests to Jaeger, want none", n-asked)
	}
	if eb := v.call(t, "GET", base+gone, viewerToken, "", http.StatusNotFound).errorBody(t); !strings.Contains(eb.Error, "no longer") {
		t.Errorf("a trace Jaeger lacks reads %q, want it to say the store no longer has it", eb.Error)
	}
	j.down.Store(true)
	v.call(t, "GET", base+id, viewerToken, "", http.StatusBadGateway)
	j.down.Store(false)
	v.call(t, "GET", base+id, "", "", http.StatusUnauthorized)
	v.call(t, "GET", base+id, ninaToken, "", http.StatusForbidden)

	// The shared server was started without a trace source.
	plain := validated{e: shared, router: router}
	if eb := plain.call(t, "GET", base+id, viewerToken, "", http.StatusNotImplemented).errorBody(t); !strings.Contains(eb.Error, "trace source") {
		t.Errorf("the 501 reads %q, want it to name the missing trace source", eb.Error)
	}
}
