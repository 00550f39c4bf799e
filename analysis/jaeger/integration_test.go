package jaeger

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/test/stack"
)

// st is the real local stack with Jaeger v2, shared by the package's tests.
var st *stack.Stack

// TestMain runs the package's tests against the real stack. A stack that
// does not start fails the package; it is never skipped.
func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{Jaeger: true}, &st)) }

// tracers holds one TracerProvider per service and version, so that each
// span's resource carries service.name and service.version as a real
// service's would.
type tracers map[string]*sdktrace.TracerProvider

// tracer returns a tracer of service at version, creating its provider on
// first use, exporting over OTLP/HTTP to the stack's Jaeger.
func (ts tracers) tracer(t *testing.T, service, version string) trace.Tracer {
	t.Helper()
	key := service + "@" + version
	if tp, ok := ts[key]; ok {
		return tp.Tracer("serin-test")
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpoint(st.OTLPHTTPEndpoint), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatalf("OTLP exporter for %s: %v", key, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	ts[key] = tp
	return tp.Tracer("serin-test")
}

// flush sends every provider's spans to Jaeger and shuts the providers down.
func (ts tracers) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for key, tp := range ts {
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatalf("flush %s: %v", key, err)
		}
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatalf("shut down %s: %v", key, err)
		}
	}
}

// at starts or ends a span at t0+d, so that durations are exact without
// sleeping.
func at(t0 time.Time, d time.Duration) trace.SpanEventOption {
	return trace.WithTimestamp(t0.Add(d))
}

// emitCall3 records one frontend → checkout → payments trace starting at
// t0, in which checkout's client call to payments takes pay, and returns its
// trace ID. A failed call answers 503.
func emitCall3(front, checkout, pay trace.Tracer, t0 time.Time, payDur time.Duration, fail bool) string {
	server, client := trace.WithSpanKind(trace.SpanKindServer), trace.WithSpanKind(trace.SpanKindClient)
	ctx, fSrv := front.Start(context.Background(), "GET /buy", server, at(t0, 0))
	ctx, fCli := front.Start(ctx, "POST checkout", client, at(t0, time.Millisecond))
	ctx, cSrv := checkout.Start(ctx, "POST /checkout", server, at(t0, 2*time.Millisecond))
	ctx, cCli := checkout.Start(ctx, "POST payments", client, at(t0, 3*time.Millisecond))
	_, pSrv := pay.Start(ctx, "POST /pay", server, at(t0, 4*time.Millisecond))
	if fail {
		pSrv.SetAttributes(attribute.Int("http.status_code", 503))
		pSrv.SetStatus(codes.Error, "payments unavailable")
		cCli.SetAttributes(attribute.Int("http.status_code", 503))
	}
	pSrv.End(at(t0, 2*time.Millisecond+payDur))
	cCli.End(at(t0, 3*time.Millisecond+payDur))
	cSrv.End(at(t0, 5*time.Millisecond+payDur))
	fCli.End(at(t0, 10*time.Millisecond+payDur))
	fSrv.End(at(t0, 12*time.Millisecond+payDur))
	return fSrv.SpanContext().TraceID().String()
}

// emitCall2 records a frontend → svc trace in which the call takes d.
func emitCall2(front, svc trace.Tracer, t0 time.Time, d time.Duration) {
	ctx, fCli := front.Start(context.Background(), "GET cart", trace.WithSpanKind(trace.SpanKindClient), at(t0, 0))
	_, sSrv := svc.Start(ctx, "GET /cart", trace.WithSpanKind(trace.SpanKindServer), at(t0, time.Millisecond))
	sSrv.End(at(t0, d-time.Millisecond))
	fCli.End(at(t0, d))
}

// scenario is what emitTraffic sent, to check against.
type scenario struct {
	since, until   time.Time
	failedCanary   []string // trace IDs of the failed canary calls
	slowestFailed  string   // the one CanaryTraceID should name
	canaryPayMaxMs float64
	stablePayMaxMs float64
}

// The traffic is sent once and shared by the tests: a second copy in the
// same Jaeger would blur the counts.
var (
	trafficOnce sync.Once
	traffic     *scenario
)

// sharedTraffic returns the scenario, sending it on first use.
func sharedTraffic(t *testing.T) scenario {
	t.Helper()
	trafficOnce.Do(func() {
		sc := emitTraffic(t)
		traffic = &sc
	})
	if traffic == nil {
		t.Fatal("sending the test traffic to Jaeger failed in an earlier test")
	}
	return *traffic
}

// emitTraffic sends checkout (v2 canary, v1 stable, v3 other) and cart
// (host mode) traffic to Jaeger and flushes it.
func emitTraffic(t *testing.T) scenario {
	t.Helper()
	ts := tracers{}
	front, pay := ts.tracer(t, "frontend", "v1"), ts.tracer(t, "payments", "v7")
	v1, v2, v3 := ts.tracer(t, "checkout", "v1"), ts.tracer(t, "checkout", "v2"), ts.tracer(t, "checkout", "v3")
	t0 := time.Now().Truncate(time.Millisecond)
	sc := scenario{since: t0, until: t0.Add(time.Minute)}
	step := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	for i := range 30 {
		// stable: 15 ms + 0.3 ms per call, the 7th fails.
		d := 15*time.Millisecond + time.Duration(i)*300*time.Microsecond
		emitCall3(front, v1, pay, step(2*i), d, i == 7)
		sc.stablePayMaxMs = float64(d) / 1e6
		if i >= 20 {
			continue
		}
		// canary: 280 ms + 2 ms per call, the 3rd, 8th and 15th fail.
		d = 280*time.Millisecond + time.Duration(i)*2*time.Millisecond
		fail := i == 3 || i == 8 || i == 15
		id := emitCall3(front, v2, pay, step(2*i+1), d, fail)
		if fail {
			sc.failedCanary = append(sc.failedCanary, id)
			sc.slowestFailed = id
		}
		sc.canaryPayMaxMs = float64(d) / 1e6
	}
	for i := range 2 { // another version: must not count
		emitCall3(front, v3, pay, step(70+i), 2*time.Second, true)
	}
	cart, canary := ts.tracer(t, "cart", ""), ts.tracer(t, "cart-canary", "")
	for i := range 5 {
		emitCall2(front, cart, step(80+2*i), 10*time.Millisecond)
		emitCall2(front, canary, step(81+2*i), 50*time.Millisecond)
	}
	ts.flush(t)
	return sc
}

// waitEdges polls Edges until done accepts its result, failing the test
// after a deadline (Jaeger shows spans about 1 s after they are sent).
func waitEdges(t *testing.T, src *Source, target analysis.Target, sc scenario,
	done func(map[analysis.Edge]analysis.EdgePair) bool) map[analysis.Edge]analysis.EdgePair {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := src.Edges(context.Background(), target, sc.since, sc.until)
		if err != nil && !errors.Is(err, analysis.ErrNoData) {
			t.Fatalf("Edges(%s): %v", target.Service, err)
		}
		if err == nil && done(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("Edges(%s) after 20 s: %+v, %v", target.Service, got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// near reports whether two milliseconds agree to a microsecond.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

func TestIntegrationEdgesFromRealJaeger(t *testing.T) {
	sc := sharedTraffic(t)
	src := newSource(t, Options{QueryURL: st.JaegerQueryURL})
	toPay := analysis.Edge{From: "checkout", To: "payments"}
	got := waitEdges(t, src, checkoutV2, sc, func(m map[analysis.Edge]analysis.EdgePair) bool {
		p := m[toPay]
		return p.Canary.Requests == 20 && p.Stable.Requests == 30
	})

	// The real Jaeger lists its services, which picks the names searched.
	if known, _, err := src.known(context.Background(), 0); err != nil || !slices.Contains(known, "checkout") {
		t.Errorf("Jaeger's service list = %q, %v; want it to include checkout", known, err)
	}
	p := got[toPay]
	if p.Canary.Errors != 3 || p.Stable.Errors != 1 {
		t.Errorf("checkout → payments errors: canary %v, stable %v; want 3 and 1", p.Canary.Errors, p.Stable.Errors)
	}
	if !near(p.Canary.P99Ms, sc.canaryPayMaxMs) || !near(p.Stable.P99Ms, sc.stablePayMaxMs) {
		t.Errorf("checkout → payments p99: canary %v, stable %v; want %v and %v",
			p.Canary.P99Ms, p.Stable.P99Ms, sc.canaryPayMaxMs, sc.stablePayMaxMs)
	}
	if p.Canary.P99Ms < 10*p.Stable.P99Ms {
		t.Errorf("canary p99 %v ms is not ≫ stable p99 %v ms", p.Canary.P99Ms, p.Stable.P99Ms)
	}
	if p.CanaryTraceID != sc.slowestFailed {
		t.Errorf("CanaryTraceID = %q, want the slowest failed canary trace %q (failed: %v)",
			p.CanaryTraceID, sc.slowestFailed, sc.failedCanary)
	}
	front := got[analysis.Edge{From: "frontend", To: "checkout"}]
	if front.Canary.Requests != 20 || front.Stable.Requests != 30 || front.Canary.Errors+front.Stable.Errors != 0 {
		t.Errorf("frontend → checkout = %+v, want 20 canary and 30 stable calls without errors", front)
	}
	if !near(front.Canary.P99Ms, sc.canaryPayMaxMs+9) {
		t.Errorf("frontend → checkout canary p99 = %v, want frontend's client span, %v", front.Canary.P99Ms, sc.canaryPayMaxMs+9)
	}
	if len(got) != 2 {
		t.Errorf("edges = %v, want only frontend → checkout and checkout → payments", slices.Collect(maps.Keys(got)))
	}
	t.Log(FormatEdge("checkout", toPay, "v2", "v1", p))
	assertTraceFindable(t, p.CanaryTraceID)
}

// assertTraceFindable fetches a trace by ID through the API and checks that
// it went through checkout v2.
func assertTraceFindable(t *testing.T, id string) {
	t.Helper()
	resp, err := http.Get(st.JaegerQueryURL + "/api/v3/traces/" + id)
	if err != nil {
		t.Fatalf("get trace %s: %v", id, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get trace %s: HTTP %d: %s", id, resp.StatusCode, body)
	}
	spans, err := decodeTraces(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("decode trace %s: %v", id, err)
	}
	if versionMode.sideOf(spans) != sideCanary {
		t.Errorf("trace %s (%d spans) did not go through checkout v2", id, len(spans))
	}
}

func TestIntegrationMaxTracesAndNoData(t *testing.T) {
	sc := sharedTraffic(t)
	full := newSource(t, Options{QueryURL: st.JaegerQueryURL})
	waitEdges(t, full, checkoutV2, sc, func(m map[analysis.Edge]analysis.EdgePair) bool {
		return m[analysis.Edge{From: "checkout", To: "payments"}].Canary.Requests >= 20
	})
	few := newSource(t, Options{QueryURL: st.JaegerQueryURL, MaxTraces: 10})
	got, err := few.Edges(context.Background(), checkoutV2, sc.since, sc.until)
	if err != nil {
		t.Fatalf("Edges with MaxTraces 10: %v", err)
	}
	p := got[analysis.Edge{From: "frontend", To: "checkout"}]
	if n := p.Canary.Requests + p.Stable.Requests; n == 0 || n > 10 {
		t.Errorf("MaxTraces 10: %v calls into checkout, want 1..10", n)
	}

	nobody := analysis.Target{Namespace: "shop", Service: "nobody", Canary: analysis.Side{Version: "v2"}, Stable: analysis.Side{Version: "v1"}}
	if _, err := full.Edges(context.Background(), nobody, sc.since, sc.until); !errors.Is(err, analysis.ErrNoData) {
		t.Errorf("Edges of a service without traces: %v, want ErrNoData", err)
	}
}

func TestIntegrationHostMode(t *testing.T) {
	sc := sharedTraffic(t)
	src := newSource(t, Options{QueryURL: st.JaegerQueryURL})
	cart := analysis.Target{Namespace: "shop", Service: "cart", HostMode: true,
		Canary: analysis.Side{Host: "cart-canary.shop.svc.cluster.local"},
		Stable: analysis.Side{Host: "cart.shop.svc.cluster.local"}}
	in := analysis.Edge{From: "frontend", To: "cart"}
	got := waitEdges(t, src, cart, sc, func(m map[analysis.Edge]analysis.EdgePair) bool {
		return m[in].Canary.Requests >= 5 && m[in].Stable.Requests >= 5
	})
	if p := got[in]; !near(p.Canary.P99Ms, 50) || !near(p.Stable.P99Ms, 10) || p.CanaryTraceID == "" {
		t.Errorf("frontend → cart = %+v, want p99 50 ms vs 10 ms and a canary trace", p)
	}
}
