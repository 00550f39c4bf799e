package jaeger

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// checkoutV2 is the target of most tests: checkout, canary v2, stable v1.
var checkoutV2 = analysis.Target{
	Namespace: "shop", Service: "checkout",
	Canary: analysis.Side{Version: "v2"}, Stable: analysis.Side{Version: "v1"},
}

// fakeJaeger serves canned answers on /api/v3/traces and records the
// queries it was asked.
type fakeJaeger struct {
	mu      sync.Mutex
	queries []url.Values
	answer  func(w http.ResponseWriter, q url.Values)
}

// start runs the fake on a loopback httptest server, closed with the test.
func (f *fakeJaeger) start(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/traces" {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		f.mu.Lock()
		f.queries = append(f.queries, r.URL.Query())
		f.mu.Unlock()
		f.answer(w, r.URL.Query())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// serve returns an answer that writes status and body.
func serve(status int, body string) func(http.ResponseWriter, url.Values) {
	return func(w http.ResponseWriter, _ url.Values) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// newSource builds a Source on url, failing the test on error.
func newSource(t *testing.T, o Options) *Source {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return s
}

// window is the time range every test asks for.
var since, until = base.Add(-time.Minute), base.Add(time.Minute)

func TestEdgesNormalResponse(t *testing.T) {
	spans := concat(
		call3("c1", "v2", 300, false), call3("c2", "v2", 280, true), call3("c3", "v2", 310, false),
		call3("s1", "v1", 20, false), call3("s2", "v1", 25, false),
		call3("o1", "v3", 5000, true), // another version: skipped
	)
	f := &fakeJaeger{answer: serve(200, otlpJSON(t, spans...))}
	srv := f.start(t)
	got, err := newSource(t, Options{QueryURL: srv.URL}).Edges(context.Background(), checkoutV2, since, until)
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	toPay := got[analysis.Edge{From: "checkout", To: "payments"}]
	want := analysis.EdgePair{
		Pair: analysis.Pair{
			Canary: analysis.Stats{Requests: 3, Errors: 1, P99Ms: 310},
			Stable: analysis.Stats{Requests: 2, Errors: 0, P99Ms: 25},
		},
		CanaryTraceID: hexID("c2", 32), // the failed one
	}
	if !sameStats(toPay.Canary, want.Canary) || !sameStats(toPay.Stable, want.Stable) || toPay.CanaryTraceID != want.CanaryTraceID {
		t.Errorf("checkout → payments = %+v, want %+v", toPay, want)
	}
	if len(toPay.CanaryCalls) != 3 || len(toPay.StableCalls) != 2 {
		t.Errorf("calls behind the stats: %d canary, %d stable; want 3 and 2", len(toPay.CanaryCalls), len(toPay.StableCalls))
	}
	fromFront := got[analysis.Edge{From: "frontend", To: "checkout"}]
	if fromFront.Canary.Requests != 3 || fromFront.Stable.Requests != 2 || fromFront.Canary.P99Ms != 330 {
		t.Errorf("frontend → checkout = %+v", fromFront)
	}
	if len(got) != 2 {
		t.Errorf("got %d edges, want 2: %+v", len(got), got)
	}

	q := f.queries[0]
	wantQ := map[string]string{
		"query.service_name":   "checkout",
		"query.start_time_min": "2026-11-24T11:59:00Z",
		"query.start_time_max": "2026-11-24T12:01:00Z",
		"query.num_traces":     "200",
	}
	for k, v := range wantQ {
		if q.Get(k) != v {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
		}
	}
}

func TestEdgesHonoursMaxTraces(t *testing.T) {
	f := &fakeJaeger{answer: serve(200, otlpJSON(t, call3("c1", "v2", 30, false)...))}
	srv := f.start(t)
	if _, err := newSource(t, Options{QueryURL: srv.URL, MaxTraces: 7}).Edges(context.Background(), checkoutV2, since, until); err != nil {
		t.Fatalf("Edges: %v", err)
	}
	if len(f.queries) != 1 || f.queries[0].Get("query.num_traces") != "7" {
		t.Errorf("queries = %v, want one with query.num_traces=7", f.queries)
	}
}

func TestEdgesHostMode(t *testing.T) {
	canary := []ts{
		{trace: "c", id: "f1", svc: "frontend", kind: kindClient, durMs: 60},
		{trace: "c", id: "k0", parent: "f1", svc: "checkout-canary", kind: kindServer, startMs: 1, durMs: 55},
	}
	stable := []ts{
		{trace: "s", id: "f1", svc: "frontend", kind: kindClient, durMs: 10},
		{trace: "s", id: "k0", parent: "f1", svc: "checkout", kind: kindServer, startMs: 1, durMs: 8},
	}
	f := &fakeJaeger{answer: func(w http.ResponseWriter, q url.Values) {
		spans := stable
		if q.Get("query.service_name") == "checkout-canary" {
			spans = canary
		}
		_, _ = w.Write([]byte(otlpJSON(t, spans...)))
	}}
	srv := f.start(t)
	target := analysis.Target{Namespace: "shop", Service: "checkout", HostMode: true,
		Canary: analysis.Side{Host: "checkout-canary.shop.svc.cluster.local"},
		Stable: analysis.Side{Host: "checkout.shop.svc.cluster.local"}}
	got, err := newSource(t, Options{QueryURL: srv.URL, MaxTraces: 7}).Edges(context.Background(), target, since, until)
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	e := got[analysis.Edge{From: "frontend", To: "checkout"}]
	if e.Canary.P99Ms != 60 || e.Stable.P99Ms != 10 || e.CanaryTraceID != hexID("c", 32) {
		t.Errorf("frontend → checkout = %+v", e)
	}
	var asked []string
	for _, q := range f.queries {
		asked = append(asked, q.Get("query.service_name")+"/"+q.Get("query.num_traces"))
	}
	if strings.Join(asked, " ") != "checkout-canary/3 checkout/6" {
		t.Errorf("asked %v, want checkout-canary/3 (half of MaxTraces) and checkout/6 (what is left)", asked)
	}
}

func TestEdgesPartialTraces(t *testing.T) {
	// The frontend's spans are missing: checkout's server span has an
	// unknown parent. Only checkout → payments remains.
	spans := concat(call3("c1", "v2", 300, false)[2:], call3("s1", "v1", 20, false)[2:])
	f := &fakeJaeger{answer: serve(200, otlpJSON(t, spans...))}
	srv := f.start(t)
	got, err := newSource(t, Options{QueryURL: srv.URL}).Edges(context.Background(), checkoutV2, since, until)
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	if len(got) != 1 || got[analysis.Edge{From: "checkout", To: "payments"}].Canary.P99Ms != 300 {
		t.Errorf("edges = %+v, want only checkout → payments", got)
	}
}

func TestEdgesStreamedAndUnwrappedObjects(t *testing.T) {
	// Several JSON objects one after the other, one of them not wrapped in
	// "result": the grpc-gateway streaming shape.
	body := otlpJSON(t, call3("c1", "v2", 300, false)...) + "\n" +
		strings.TrimSuffix(strings.TrimPrefix(otlpJSON(t, call3("s1", "v1", 20, false)...), `{"result":`), "}")
	f := &fakeJaeger{answer: serve(200, body)}
	srv := f.start(t)
	got, err := newSource(t, Options{QueryURL: srv.URL}).Edges(context.Background(), checkoutV2, since, until)
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	e := got[analysis.Edge{From: "checkout", To: "payments"}]
	if e.Canary.Requests != 1 || e.Stable.Requests != 1 {
		t.Errorf("checkout → payments = %+v, want one canary and one stable call", e)
	}
}

func TestEdgesNoData(t *testing.T) {
	noTraces := `{"error":{"httpCode":404,"message":"No traces found"}}` + "\n"
	tests := []struct {
		name    string
		status  int
		body    string
		wantMsg string
	}{
		{"Jaeger's 404 no traces found", 404, noTraces,
			"no traces through checkout between 2026-11-24T11:59:00Z and 2026-11-24T12:01:00Z"},
		{"empty result", 200, `{"result":{}}`, "no traces through checkout"},
		{"empty resourceSpans", 200, `{"result":{"resourceSpans":[]}}`, "no traces through checkout"},
		{"only other versions", 200, otlpJSON(t, concat(call3("a", "v3", 10, false), call3("b", "", 10, false))...),
			`none of 2 traces through checkout between 2026-11-24T11:59:00Z and 2026-11-24T12:01:00Z went through canary "v2" or stable "v1"`},
		{"no cross-service calls", 200, otlpJSON(t, ts{trace: "a", id: "c0", svc: "checkout", ver: "v2", durMs: 3}),
			"no calls from or to checkout in 1 traces (1 canary, 0 stable)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := (&fakeJaeger{answer: serve(tt.status, tt.body)}).start(t)
			got, err := newSource(t, Options{QueryURL: srv.URL}).Edges(context.Background(), checkoutV2, since, until)
			if !errors.Is(err, analysis.ErrNoData) || errors.Is(err, analysis.ErrUnavailable) {
				t.Fatalf("Edges error = %v, want ErrNoData only", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if got != nil {
				t.Errorf("edges = %+v, want nil with the error", got)
			}
		})
	}
}

func TestEdgesUnavailable(t *testing.T) {
	slow := func(w http.ResponseWriter, q url.Values) {
		time.Sleep(300 * time.Millisecond)
		_, _ = w.Write([]byte(`{"result":{}}`))
	}
	tests := []struct {
		name    string
		answer  func(http.ResponseWriter, url.Values)
		wantMsg string
	}{
		{"malformed JSON", serve(200, `{"result":{"resourceSpans":[{`), "unexpected EOF"},
		{"not JSON (the UI's page)", serve(200, "<!DOCTYPE html><html></html>"), "invalid character '<'"},
		{"empty body", serve(200, ""), "empty response body"},
		{"JSON without a result", serve(200, `{"data":[]}`), "neither result, resourceSpans nor error"},
		{"wrong types", serve(200, `{"result":{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}}`), "soon"},
		{"HTTP 500", serve(500, `{"error":{"httpCode":500,"message":"search depth must be greater than 0"}}`),
			"HTTP 500: {\"error\":{\"httpCode\":500,\"message\":\"search depth must be greater than 0\"}}"},
		{"HTTP 404 that is not Jaeger's", serve(404, "404 page not found"), "HTTP 404 (is this Jaeger with API v3?): 404 page not found"},
		{"error object in a 200 stream", serve(200, `{"result":{}}{"error":{"httpCode":500,"message":"boom"}}`), "HTTP 500: boom"},
		{"timeout", slow, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := (&fakeJaeger{answer: tt.answer}).start(t)
			s := newSource(t, Options{QueryURL: srv.URL, Timeout: 100 * time.Millisecond})
			got, err := s.Edges(context.Background(), checkoutV2, since, until)
			assertUnavailable(t, got, err, srv.URL+"/api/v3/traces?", tt.wantMsg)
		})
	}
}

func TestEdgesConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	got, err := newSource(t, Options{QueryURL: srv.URL}).Edges(context.Background(), checkoutV2, since, until)
	assertUnavailable(t, got, err, srv.URL+"/api/v3/traces?", "connection refused")
}

// assertUnavailable checks that err wraps ErrUnavailable (and not
// ErrNoData), names url and the cause, and that no edges came with it.
func assertUnavailable(t *testing.T, got map[analysis.Edge]analysis.EdgePair, err error, url, cause string) {
	t.Helper()
	if !errors.Is(err, analysis.ErrUnavailable) || errors.Is(err, analysis.ErrNoData) {
		t.Fatalf("error = %v, want ErrUnavailable only", err)
	}
	for _, want := range []string{url, cause} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got != nil {
		t.Errorf("edges = %+v, want nil with the error", got)
	}
}

func TestEdgesBadTarget(t *testing.T) {
	f := &fakeJaeger{answer: serve(200, `{"result":{}}`)}
	srv := f.start(t)
	s := newSource(t, Options{QueryURL: srv.URL})
	bad := analysis.Target{Namespace: "shop", Service: "checkout", Canary: analysis.Side{Version: "v2"}}
	if _, err := s.Edges(context.Background(), bad, since, until); err == nil || !strings.Contains(err.Error(), "shop/checkout") {
		t.Errorf("Edges with no stable version: error %v, want one naming shop/checkout", err)
	}
	if _, err := s.Edges(context.Background(), checkoutV2, until, since); err == nil || !strings.Contains(err.Error(), "before it starts") {
		t.Errorf("Edges with until before since: error %v", err)
	}
	if len(f.queries) != 0 {
		t.Errorf("Jaeger was asked %d times for a bad request, want 0", len(f.queries))
	}
}

func TestNew(t *testing.T) {
	bad := []struct {
		o    Options
		want string
	}{
		{Options{}, "QueryURL is required"},
		{Options{QueryURL: "127.0.0.1:16686"}, `bad QueryURL "127.0.0.1:16686"`},
		{Options{QueryURL: "ftp://jaeger:16686"}, `bad QueryURL "ftp://jaeger:16686"`},
		{Options{QueryURL: "http://"}, `bad QueryURL "http://"`},
		{Options{QueryURL: "http://jaeger:16686/%zz"}, `bad QueryURL "http://jaeger:16686/%zz"`},
		{Options{QueryURL: "http://jaeger:16686", MaxTraces: -1}, "bad MaxTraces -1"},
		{Options{QueryURL: "http://jaeger:16686", Timeout: -time.Second}, "bad Timeout -1s"},
		{Options{QueryURL: "http://jaeger:16686", MaxInFlight: -1}, "bad MaxInFlight -1"},
		{Options{QueryURL: "http://jaeger:16686", CacheTTL: -time.Second}, "bad CacheTTL -1s"},
	}
	for _, tt := range bad {
		if s, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, %v; want an error containing %q", tt.o, s, err, tt.want)
		}
	}
	s := newSource(t, Options{QueryURL: "http://jaeger:16686/prefix"})
	if s.maxTraces != DefaultMaxTraces || s.timeout != DefaultTimeout || s.client == nil || s.now == nil {
		t.Errorf("defaults: maxTraces %d, timeout %v, client %v", s.maxTraces, s.timeout, s.client)
	}
	if cap(s.slots) != DefaultMaxInFlight || s.step != DefaultCacheTTL {
		t.Errorf("defaults: %d requests in flight, cache TTL %v; want %d and %v", cap(s.slots), s.step, DefaultMaxInFlight, DefaultCacheTTL)
	}
	if u := s.tracesURL("x", since, until, 1); u.Path != "/prefix/api/v3/traces" {
		t.Errorf("path under a prefix = %q", u.Path)
	}
}

func TestDecodeTracesVariants(t *testing.T) {
	// Enum names instead of numbers, numbers instead of strings, base64
	// IDs, an all-zero parent and the newer http.response.status_code.
	body := `{"resourceSpans":[{"resource":{"attributes":[
		{"key":"service.name","value":{"stringValue":"checkout"}},
		{"key":"service.version","value":{"stringValue":"v2"}}]},
	  "scopeSpans":[{"spans":[{
		"traceId":"AAAAAAAAAAAAAAAAAAAAAQ==","spanId":"AAAAAAAAAAI=","parentSpanId":"0000000000000000",
		"kind":"SPAN_KIND_CLIENT","startTimeUnixNano":1000000,"endTimeUnixNano":"3500000",
		"status":{"code":"STATUS_CODE_UNSET"},
		"attributes":[{"key":"http.response.status_code","value":{"intValue":502}}]}]}]}]}`
	got, err := decodeTraces(strings.NewReader(body))
	if err != nil {
		t.Fatalf("decodeTraces: %v", err)
	}
	want := span{TraceID: "00000000000000000000000000000001", SpanID: "0000000000000002", Service: "checkout",
		Version: "v2", Kind: kindClient, StartNs: 1e6, EndNs: 3.5e6, Failed: true}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("decodeTraces = %+v, want [%+v]", got, want)
	}
	if ms := got[0].DurationMs(); ms != 2.5 {
		t.Errorf("DurationMs = %v, want 2.5", ms)
	}
}

func TestDecodeCalledHost(t *testing.T) {
	tests := []struct {
		name string
		span ts
		want string
	}{
		{"client: upstream_cluster", ts{kind: kindClient, cluster: "outbound|80||Checkout-Canary.shop.svc.cluster.local",
			url: "http://checkout.shop.svc.cluster.local/checkout"}, "checkout-canary.shop.svc.cluster.local"},
		{"client: subset cluster", ts{kind: kindClient, cluster: "outbound|80|v2|checkout.shop.svc.cluster.local"},
			"checkout.shop.svc.cluster.local"},
		{"client: http.url without a cluster", ts{kind: kindClient, url: "http://checkout-canary:8080/checkout"}, "checkout-canary"},
		{"client: a cluster that is not Istio's", ts{kind: kindClient, cluster: "checkout_cluster",
			url: "http://checkout-canary.shop/x"}, "checkout-canary.shop"},
		{"client: a URL without a host", ts{kind: kindClient, url: "/checkout"}, ""},
		{"client: no attributes", ts{kind: kindClient}, ""},
		{"server: inbound cluster", ts{kind: kindServer, cluster: "inbound|80||checkout-canary.shop.svc.cluster.local",
			url: "http://checkout.shop.svc.cluster.local/checkout"}, "checkout-canary.shop.svc.cluster.local"},
		{"server: inbound cluster without a host", ts{kind: kindServer, cluster: "inbound|8080||",
			url: "http://checkout.shop.svc.cluster.local/checkout"}, ""},
		{"server: http.url is the host asked for, not used", ts{kind: kindServer, url: "http://checkout-canary/x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.span.trace, tt.span.id, tt.span.svc = "a", "s", "frontend"
			got, err := decodeTraces(strings.NewReader(otlpJSON(t, tt.span)))
			if err != nil || len(got) != 1 || got[0].CalledHost != tt.want {
				t.Errorf("decodeTraces = %+v, %v; want CalledHost %q", got, err, tt.want)
			}
		})
	}
}

func TestHTTPStatusFailure(t *testing.T) {
	for code, want := range map[int]bool{0: false, 200: false, 404: false, 499: false, 500: true, 503: true} {
		s := ts{trace: "a", id: "p0", svc: "payments", http: code}
		got, err := decodeTraces(strings.NewReader(otlpJSON(t, s)))
		if err != nil || len(got) != 1 || got[0].Failed != want {
			t.Errorf("http.status_code %d: spans %+v, err %v; want Failed %v", code, got, err, want)
		}
	}
}

// sameStats compares the measured numbers of two Stats.
func sameStats(a, b analysis.Stats) bool {
	return a.Requests == b.Requests && a.Errors == b.Errors && a.P99Ms == b.P99Ms
}
