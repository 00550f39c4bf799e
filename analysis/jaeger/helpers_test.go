package jaeger

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// base is the start of every canned trace.
var base = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// ts is a canned span, written by the tests in a few words.
type ts struct {
	trace, id, parent string
	svc, ver          string
	kind              int     // kindServer, kindClient or 0
	startMs, durMs    float64 // relative to base
	errStatus         bool    // status.code ERROR
	http              int     // http.status_code, 0 for none
	cluster, url      string  // upstream_cluster and http.url, "" for none
}

// otlpJSON renders spans as Jaeger v1.76's API v3 answer: one
// {"result": TracesData} object, one resourceSpans entry per service and
// version, IDs in hex, times and ints as strings.
func otlpJSON(t *testing.T, spans ...ts) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"result": tracesDataJSON(spans)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tracesDataJSON builds an OTLP JSON TracesData value.
func tracesDataJSON(spans []ts) map[string]any {
	type res struct{ svc, ver string }
	var order []res
	bySvc := map[res][]any{}
	for _, s := range spans {
		r := res{s.svc, s.ver}
		if _, ok := bySvc[r]; !ok {
			order = append(order, r)
		}
		bySvc[r] = append(bySvc[r], spanJSON(s))
	}
	var rss []any
	for _, r := range order {
		attrs := []any{strAttr("service.name", r.svc)}
		if r.ver != "" {
			attrs = append(attrs, strAttr("service.version", r.ver))
		}
		rss = append(rss, map[string]any{
			"resource":   map[string]any{"attributes": attrs},
			"scopeSpans": []any{map[string]any{"scope": map[string]any{}, "spans": bySvc[r]}},
		})
	}
	return map[string]any{"resourceSpans": rss}
}

// spanJSON builds one OTLP JSON span.
func spanJSON(s ts) map[string]any {
	start := base.Add(time.Duration(s.startMs * float64(time.Millisecond)))
	end := start.Add(time.Duration(s.durMs * float64(time.Millisecond)))
	m := map[string]any{
		"traceId":           hexID(s.trace, 32),
		"spanId":            hexID(s.id, 16),
		"name":              s.svc + "-" + s.id,
		"kind":              s.kind,
		"startTimeUnixNano": strconv.FormatInt(start.UnixNano(), 10),
		"endTimeUnixNano":   strconv.FormatInt(end.UnixNano(), 10),
		"status":            map[string]any{},
	}
	if s.parent != "" {
		m["parentSpanId"] = hexID(s.parent, 16)
	}
	if s.errStatus {
		m["status"] = map[string]any{"code": 2}
	}
	var attrs []any
	if s.http != 0 {
		attrs = append(attrs, map[string]any{
			"key": "http.status_code", "value": map[string]any{"intValue": strconv.Itoa(s.http)},
		})
	}
	if s.cluster != "" {
		attrs = append(attrs, strAttr("upstream_cluster", s.cluster))
	}
	if s.url != "" {
		attrs = append(attrs, strAttr("http.url", s.url))
	}
	if attrs != nil {
		m["attributes"] = attrs
	}
	return m
}

// strAttr builds a string KeyValue.
func strAttr(k, v string) map[string]any {
	return map[string]any{"key": k, "value": map[string]any{"stringValue": v}}
}

// hexID turns a short test name ("t1", "a") into a hex ID of n digits, so
// that the IDs the source returns can be compared with the test's names.
func hexID(name string, n int) string {
	return fmt.Sprintf("%0*x", n, name)
}

// call3 is a frontend → checkout → payments trace: frontend's client span
// to checkout, checkout's server span, checkout's client span to payments
// (payMs long) and payments' server span. failPay marks the payments
// server span 503.
func call3(trace, ver string, payMs float64, failPay bool) []ts {
	code := 200
	if failPay {
		code = 503
	}
	return []ts{
		{trace: trace, id: "f0", svc: "frontend", kind: kindServer, durMs: payMs + 30},
		{trace: trace, id: "f1", parent: "f0", svc: "frontend", kind: kindClient, startMs: 1, durMs: payMs + 20},
		{trace: trace, id: "c0", parent: "f1", svc: "checkout", ver: ver, kind: kindServer, startMs: 2, durMs: payMs + 15},
		{trace: trace, id: "c1", parent: "c0", svc: "checkout", ver: ver, kind: kindClient, startMs: 3, durMs: payMs},
		{trace: trace, id: "p0", parent: "c1", svc: "payments", ver: "v7", kind: kindServer, startMs: 4, durMs: payMs - 2, http: code},
	}
}

// concat joins span lists.
func concat(lists ...[]ts) []ts {
	var out []ts
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// hostCall3 is call3 in host mode with one service.name on both sides, as
// Istio's sidecars trace it: frontend's CLIENT span names the host the mesh
// routed it to in upstream_cluster, and checkout's CLIENT span names
// payments'.
func hostCall3(trace, routedTo string, payMs float64, failPay bool) []ts {
	spans := call3(trace, "v1", payMs, failPay)
	spans[1].cluster = "outbound|80||" + routedTo
	spans[1].url = "http://checkout.shop.svc.cluster.local/checkout"
	spans[3].cluster = "outbound|80||payments.shop.svc.cluster.local"
	return spans
}

// named renames checkout's spans in a call3 trace to svc, as in the
// Flagger convention where each side is named after its host.
func named(svc string, spans []ts) []ts {
	for i := range spans {
		if spans[i].svc == "checkout" {
			spans[i].svc, spans[i].ver = svc, ""
		}
	}
	return spans
}
