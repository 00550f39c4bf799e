package jaeger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// TestIntegrationTraceFromRealJaeger reads one of the shared traffic's
// failed canary traces by ID from the real Jaeger: five spans in tree
// order with their operations, checkout's marked as the canary's, its
// failed call to payments marked; and an ID Jaeger does not have is
// ErrNoData, from Jaeger's own 404.
func TestIntegrationTraceFromRealJaeger(t *testing.T) {
	sc := sharedTraffic(t)
	src := newSource(t, Options{QueryURL: st.JaegerQueryURL})
	var tr analysis.Trace
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		tr, err = src.Trace(context.Background(), checkoutV2, toPayments, sc.slowestFailed)
		if err == nil && len(tr.Spans) == 5 {
			break
		}
		if (err != nil && !errors.Is(err, analysis.ErrNoData)) || time.Now().After(deadline) {
			t.Fatalf("Trace(%s): %+v, %v", sc.slowestFailed, tr, err)
		}
	}
	var ops []string
	for _, s := range tr.Spans {
		ops = append(ops, s.Service+" "+s.Operation+" "+s.Side)
	}
	want := []string{"frontend GET /buy ", "frontend POST checkout ", "checkout POST /checkout canary", "checkout POST payments canary", "payments POST /pay "}
	if len(ops) != len(want) {
		t.Fatalf("spans %q, want %q", ops, want)
	}
	for i := range want {
		if ops[i] != want[i] {
			t.Errorf("span %d is %q, want %q", i, ops[i], want[i])
		}
	}
	marked := tr.Spans[3]
	if tr.Marked != marked.SpanID || tr.Mark != analysis.MarkFailed || !marked.Error || tr.Side != analysis.SideCanary {
		t.Errorf("marked %s (%s), trace side %q: want checkout's failed call to payments %s", tr.Marked, tr.Mark, tr.Side, marked.SpanID)
	}
	if marked.StartOffsetUs != 3000 || marked.DurationUs < 280_000 {
		t.Errorf("the marked call starts at %d µs and takes %d µs, want 3000 and ≥ 280000", marked.StartOffsetUs, marked.DurationUs)
	}
	if _, err := src.Trace(context.Background(), checkoutV2, toPayments, "0123456789abcdef0123456789abcdef"); !errors.Is(err, analysis.ErrNoData) {
		t.Errorf("Trace of an ID Jaeger lacks: %v, want ErrNoData", err)
	}
}
