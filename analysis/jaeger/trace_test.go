package jaeger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// traceServer serves body with status on /api/v3/traces/{id} and counts
// the requests; any other path is a 404 page.
func traceServer(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64, *atomic.Value) {
	t.Helper()
	var asked atomic.Int64
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v3/traces/") {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		asked.Add(1)
		path.Store(r.URL.Path)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &asked, &path
}

var (
	toPayments = analysis.Edge{From: "checkout", To: "payments"}
	toCheckout = analysis.Edge{From: "frontend", To: "checkout"}
)

// spanOf returns the span of tr with the test's short ID.
func spanOf(t *testing.T, tr analysis.Trace, name string) analysis.TraceSpan {
	t.Helper()
	for _, s := range tr.Spans {
		if s.SpanID == hexID(name, 16) {
			return s
		}
	}
	t.Fatalf("no span %s in %+v", name, tr.Spans)
	return analysis.TraceSpan{}
}

func TestTraceLaysOutTheSpansAndMarksTheSlowCanaryCall(t *testing.T) {
	// The spans come out of order, as Jaeger groups them by resource.
	spans := call3("t1", "v2", 300, false)
	spans[0], spans[4] = spans[4], spans[0]
	srv, _, path := traceServer(t, http.StatusOK, otlpJSON(t, spans...))
	id := hexID("t1", 32)
	tr, err := newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), checkoutV2, toPayments, strings.ToUpper(id))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if got := path.Load(); got != "/api/v3/traces/"+id {
		t.Errorf("asked for %v, want /api/v3/traces/%s", got, id)
	}
	if tr.TraceID != id || tr.Side != analysis.SideCanary || tr.DurationUs != 330_000 {
		t.Errorf("trace %s side %q duration %d µs, want %s canary 330000 µs", tr.TraceID, tr.Side, tr.DurationUs, id)
	}
	var order []string
	for _, s := range tr.Spans {
		order = append(order, s.SpanID[len(s.SpanID)-4:])
	}
	// hexID("f0") ends in 6630: the spans in tree order f0 f1 c0 c1 p0.
	if want := []string{hexID("f0", 4), hexID("f1", 4), hexID("c0", 4), hexID("c1", 4), hexID("p0", 4)}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("spans in order %v, want %v (tree order)", order, want)
	}
	c1 := spanOf(t, tr, "c1")
	want := analysis.TraceSpan{SpanID: hexID("c1", 16), ParentID: hexID("c0", 16), Service: "checkout", Operation: "checkout-c1",
		Depth: 3, StartOffsetUs: 3000, DurationUs: 300_000, Side: analysis.SideCanary}
	if c1 != want {
		t.Errorf("checkout's call to payments is %+v, want %+v", c1, want)
	}
	for name, side := range map[string]string{"f0": "", "f1": "", "c0": analysis.SideCanary, "p0": ""} {
		if got := spanOf(t, tr, name).Side; got != side {
			t.Errorf("span %s side %q, want %q", name, got, side)
		}
	}
	// The canary's end of checkout → payments is its own CLIENT span.
	if tr.Marked != hexID("c1", 16) || tr.Mark != analysis.MarkSlowest {
		t.Errorf("marked %s (%s), want checkout's call to payments (slowest)", tr.Marked, tr.Mark)
	}

	// On frontend → checkout the canary was called: its SERVER span.
	tr, err = newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), checkoutV2, toCheckout, id)
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if tr.Marked != hexID("c0", 16) || tr.Mark != analysis.MarkSlowest {
		t.Errorf("on frontend → checkout marked %s (%s), want checkout's server span", tr.Marked, tr.Mark)
	}
}

func TestTraceMarksAFailedCallBeforeASlowerOne(t *testing.T) {
	// checkout v2 calls payments twice: a slow call that succeeds and a
	// short one answered 503.
	spans := append(call3("t2", "v2", 400, false),
		ts{trace: "t2", id: "c2", parent: "c0", svc: "checkout", ver: "v2", kind: kindClient, startMs: 410, durMs: 12, http: 503},
		ts{trace: "t2", id: "p1", parent: "c2", svc: "payments", ver: "v7", kind: kindServer, startMs: 411, durMs: 10, errStatus: true})
	srv, _, _ := traceServer(t, http.StatusOK, otlpJSON(t, spans...))
	tr, err := newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), checkoutV2, toPayments, hexID("t2", 32))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if tr.Marked != hexID("c2", 16) || tr.Mark != analysis.MarkFailed {
		t.Errorf("marked %s (%s), want the failed call c2 (failed)", tr.Marked, tr.Mark)
	}
	if !spanOf(t, tr, "c2").Error || !spanOf(t, tr, "p1").Error || spanOf(t, tr, "c1").Error {
		t.Errorf("errors: c2 %v p1 %v c1 %v, want 5xx and ERROR spans only", spanOf(t, tr, "c2").Error, spanOf(t, tr, "p1").Error, spanOf(t, tr, "c1").Error)
	}
	// A hop the trace does not have: the canary's failed span anyway.
	tr, err = newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), checkoutV2, analysis.Edge{From: "checkout", To: "inventory"}, hexID("t2", 32))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if tr.Marked != hexID("c2", 16) || tr.Mark != analysis.MarkFailed {
		t.Errorf("without the hop marked %s (%s), want the canary's failed span c2", tr.Marked, tr.Mark)
	}
}

func TestTraceInHostModeSidesByRoute(t *testing.T) {
	// One service.name on both sides: the host frontend's call was routed
	// to decides, and checkout's own call to payments is its side too.
	srv, _, _ := traceServer(t, http.StatusOK, otlpJSON(t, hostCall3("h1", "checkout-canary.shop.svc.cluster.local", 200, false)...))
	tr, err := newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), hostTarget, toPayments, hexID("h1", 32))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if tr.Side != analysis.SideCanary || spanOf(t, tr, "c0").Side != analysis.SideCanary || spanOf(t, tr, "c1").Side != analysis.SideCanary {
		t.Errorf("trace %q, c0 %q, c1 %q: want all canary", tr.Side, spanOf(t, tr, "c0").Side, spanOf(t, tr, "c1").Side)
	}
	if spanOf(t, tr, "f1").Side != "" || tr.Marked != hexID("c1", 16) {
		t.Errorf("frontend's span side %q, marked %s: want none, and checkout's call to payments", spanOf(t, tr, "f1").Side, tr.Marked)
	}
	srv, _, _ = traceServer(t, http.StatusOK, otlpJSON(t, hostCall3("h2", "checkout-primary.shop.svc.cluster.local", 20, false)...))
	tr, err = newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), hostTarget, toPayments, hexID("h2", 32))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if tr.Side != analysis.SideStable || spanOf(t, tr, "c1").Side != analysis.SideStable {
		t.Errorf("a trace routed to the primary: trace %q, c1 %q, want stable", tr.Side, spanOf(t, tr, "c1").Side)
	}
}

func TestTraceErrors(t *testing.T) {
	ctx := context.Background()
	id := hexID("t3", 32)
	t.Run("not found", func(t *testing.T) {
		srv, _, _ := traceServer(t, http.StatusNotFound, `{"error":{"httpCode":404,"message":"trace not found"}}`)
		_, err := newSource(t, Options{QueryURL: srv.URL}).Trace(ctx, checkoutV2, toPayments, id)
		if !errors.Is(err, analysis.ErrNoData) || !strings.Contains(err.Error(), id) {
			t.Errorf("Trace of a trace Jaeger lacks: %v, want ErrNoData naming it", err)
		}
	})
	t.Run("other trace", func(t *testing.T) {
		srv, _, _ := traceServer(t, http.StatusOK, otlpJSON(t, call3("zz", "v2", 10, false)...))
		_, err := newSource(t, Options{QueryURL: srv.URL}).Trace(ctx, checkoutV2, toPayments, id)
		if !errors.Is(err, analysis.ErrNoData) {
			t.Errorf("Trace answered with another trace's spans: %v, want ErrNoData", err)
		}
	})
	for name, tc := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"server error": {http.StatusInternalServerError, "boom", "HTTP 500: boom"},
		"wrong path":   {http.StatusNotFound, "404 page not found", "API v3"},
		"not json":     {http.StatusOK, "<html>", "decode"},
		"too large":    {http.StatusOK, strings.Repeat(" ", maxTraceBody+1), "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			srv, _, _ := traceServer(t, tc.status, tc.body)
			_, err := newSource(t, Options{QueryURL: srv.URL}).Trace(ctx, checkoutV2, toPayments, id)
			if !errors.Is(err, analysis.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/api/v3/traces/"+id) {
				t.Errorf("Trace: %v, want ErrUnavailable naming the URL and %q", err, tc.want)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		start := time.Now()
		_, err := newSource(t, Options{QueryURL: srv.URL, Timeout: 200 * time.Millisecond}).Trace(ctx, checkoutV2, toPayments, id)
		if !errors.Is(err, analysis.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Trace of a Jaeger that does not answer: %v, want ErrUnavailable and a deadline", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Trace took %v with a 200ms timeout", d)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		srv, asked, _ := traceServer(t, http.StatusOK, otlpJSON(t, call3("t3", "v2", 10, false)...))
		for _, bad := range []string{"", "../services", "abc/def", "xyz", strings.Repeat("a", 33)} {
			_, err := newSource(t, Options{QueryURL: srv.URL}).Trace(ctx, checkoutV2, toPayments, bad)
			if err == nil || !strings.Contains(err.Error(), "bad trace ID") || errors.Is(err, analysis.ErrUnavailable) {
				t.Errorf("Trace(%q): %v, want an error naming the bad ID", bad, err)
			}
		}
		if n := asked.Load(); n != 0 {
			t.Errorf("bad IDs sent %d requests to Jaeger, want none", n)
		}
	})
}

func TestTraceBoundsItsSpans(t *testing.T) {
	// A fan-out of many calls keeps MaxTraceSpans spans and the marked
	// one, the slowest, which comes last.
	spans := []ts{{trace: "t4", id: "r", svc: "checkout", ver: "v2", kind: kindServer, durMs: 1}}
	for i := range MaxTraceSpans + 10 {
		d := 1.0
		if i == MaxTraceSpans+9 {
			d = 800
		}
		spans = append(spans, ts{trace: "t4", id: fmt.Sprintf("c%04d", i), parent: "r", svc: "checkout", ver: "v2",
			kind: kindClient, startMs: float64(i) * 0.01, durMs: d})
	}
	srv, _, _ := traceServer(t, http.StatusOK, otlpJSON(t, spans...))
	tr, err := newSource(t, Options{QueryURL: srv.URL}).Trace(context.Background(), checkoutV2, analysis.Edge{}, hexID("t4", 32))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if len(tr.Spans) != MaxTraceSpans+1 || tr.Omitted != 10 {
		t.Errorf("%d spans and %d omitted, want %d and 10", len(tr.Spans), tr.Omitted, MaxTraceSpans+1)
	}
	last := tr.Spans[len(tr.Spans)-1]
	if want := hexID(fmt.Sprintf("c%04d", MaxTraceSpans+9), 16); last.SpanID != want || tr.Marked != want || tr.Mark != analysis.MarkSlowest {
		t.Errorf("the last span is %s, marked %s (%s): want the slowest call %s kept and marked", last.SpanID, tr.Marked, tr.Mark, want)
	}
}
