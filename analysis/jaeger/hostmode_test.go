package jaeger

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/serin-dev/serin/analysis"
)

// hostTarget is checkout in host mode, split between checkout-canary and
// checkout-primary, named short and as an FQDN.
var hostTarget = analysis.Target{Namespace: "shop", Service: "checkout", HostMode: true,
	Canary: analysis.Side{Host: "checkout-canary"},
	Stable: analysis.Side{Host: "checkout-primary.shop.svc.cluster.local"}}

// noTracesBody is Jaeger's answer to a search that found nothing (with 404).
const noTracesBody = `{"error":{"httpCode":404,"message":"No traces found"}}`

// byService answers each service name's search with its spans, and with
// Jaeger's "No traces found" for other names.
func byService(t *testing.T, spans map[string][]ts) func(http.ResponseWriter, url.Values) {
	return func(w http.ResponseWriter, q url.Values) {
		got, ok := spans[q.Get("query.service_name")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(noTracesBody))
			return
		}
		_, _ = w.Write([]byte(otlpJSON(t, got...)))
	}
}

// askedFor lists the searches f received as name/num_traces.
func askedFor(f *fakeJaeger) string {
	var asked []string
	for _, q := range f.queries {
		asked = append(asked, q.Get("query.service_name")+"/"+q.Get("query.num_traces"))
	}
	return strings.Join(asked, " ")
}

// checkHostEdges checks the edges of hostTraffic: 2 canary and 2 stable
// calls on each edge, the canary's payments calls slow and one failed.
func checkHostEdges(t *testing.T, got map[analysis.Edge]analysis.EdgePair) {
	t.Helper()
	if len(got) != 2 {
		t.Errorf("got %d edges, want frontend → checkout and checkout → payments: %+v", len(got), got)
	}
	toPay := got[analysis.Edge{From: "checkout", To: "payments"}]
	wantCanary := analysis.Stats{Requests: 2, Errors: 1, P99Ms: 310}
	wantStable := analysis.Stats{Requests: 2, Errors: 0, P99Ms: 25}
	if !sameStats(toPay.Canary, wantCanary) || !sameStats(toPay.Stable, wantStable) || toPay.CanaryTraceID != hexID("c2", 32) {
		t.Errorf("checkout → payments = %+v, want canary %+v, stable %+v and trace c2", toPay, wantCanary, wantStable)
	}
	in := got[analysis.Edge{From: "frontend", To: "checkout"}]
	if in.Canary.Requests != 2 || in.Stable.Requests != 2 || in.Canary.P99Ms != 330 || in.Stable.P99Ms != 45 {
		t.Errorf("frontend → checkout = %+v, want 2 and 2 calls, p99 330 and 45 ms", in)
	}
}

func TestEdgesHostModeSharedServiceName(t *testing.T) {
	// Both sides' spans are named checkout (with the same version): only
	// the host frontend's call was routed to tells them apart. A trace
	// whose routed host is the service's own (neither side) is skipped.
	spans := append(routedTraces(), hostCall3("o1", "checkout.shop.svc.cluster.local", 5000, true)...)
	f := &fakeJaeger{answer: byService(t, map[string][]ts{"checkout": spans})}
	got := hostEdges(t, f, Options{})
	checkHostEdges(t, got)
	// The side names found nothing and left their share to checkout.
	if a := askedFor(f); a != "checkout-canary/66 checkout-primary/100 checkout/200" {
		t.Errorf("asked %s, want checkout-canary/66 checkout-primary/100 checkout/200", a)
	}
}

func TestEdgesHostModeNamedAfterHosts(t *testing.T) {
	// The Flagger convention: each side's spans are named after its host,
	// without upstream_cluster. The edges still read checkout.
	f := &fakeJaeger{answer: byService(t, map[string][]ts{
		"checkout-canary":  named("checkout-canary", concat(call3("c1", "", 300, false), call3("c2", "", 310, true))),
		"checkout-primary": named("checkout-primary", concat(call3("s1", "", 20, false), call3("s2", "", 25, false))),
	})}
	got := hostEdges(t, f, Options{})
	checkHostEdges(t, got)
	if a := askedFor(f); a != "checkout-canary/66 checkout-primary/99 checkout/196" {
		t.Errorf("asked %s, want checkout-canary/66 checkout-primary/99 checkout/196", a)
	}
}

func TestEdgesHostModeCountsATraceOnce(t *testing.T) {
	// Every search finds every trace, as when a trace went through spans
	// named both checkout and checkout-canary: each trace counts once.
	f := &fakeJaeger{answer: serve(200, otlpJSON(t, routedTraces()...))}
	got := hostEdges(t, f, Options{})
	checkHostEdges(t, got)
	if len(f.queries) != 3 {
		t.Errorf("asked %s, want the three names", askedFor(f))
	}
}

func TestEdgesHostModeInboundCluster(t *testing.T) {
	// The callers' CLIENT spans name the host they asked for (the
	// VirtualService's, checkout), not the one the mesh routed to; the
	// server span's inbound upstream_cluster names the side that served.
	viaInbound := func(trace, servedAs string, payMs float64, failPay bool) []ts {
		spans := hostCall3(trace, "checkout.shop.svc.cluster.local", payMs, failPay)
		spans[2].cluster = "inbound|80||" + servedAs
		return spans
	}
	spans := concat(
		viaInbound("c1", "checkout-canary.shop.svc.cluster.local", 300, false),
		viaInbound("c2", "checkout-canary.shop.svc.cluster.local", 310, true),
		viaInbound("s1", "checkout-primary.shop.svc.cluster.local", 20, false),
		viaInbound("s2", "checkout-primary.shop.svc.cluster.local", 25, false),
	)
	f := &fakeJaeger{answer: byService(t, map[string][]ts{"checkout": spans})}
	got := hostEdges(t, f, Options{})
	checkHostEdges(t, got)
}

func TestEdgesHostModeStopsAtMaxTraces(t *testing.T) {
	// Once MaxTraces distinct traces are in (here the first search brought
	// both), the other names are not searched.
	spans := concat(
		hostCall3("c1", "checkout-canary.shop.svc.cluster.local", 300, false),
		hostCall3("s1", "checkout-primary.shop.svc.cluster.local", 20, false),
	)
	f := &fakeJaeger{answer: serve(200, otlpJSON(t, spans...))}
	got := hostEdges(t, f, Options{MaxTraces: 2})
	if a := askedFor(f); a != "checkout-canary/1" {
		t.Errorf("asked %s, want only checkout-canary/1", a)
	}
	if e := got[analysis.Edge{From: "frontend", To: "checkout"}]; e.Canary.Requests != 1 || e.Stable.Requests != 1 {
		t.Errorf("frontend → checkout = %+v, want 1 and 1 calls", e)
	}
}

// routedTraces are two canary and two stable traces in which frontend's
// CLIENT span names the host the mesh routed the call to; c2's call to
// payments failed.
func routedTraces() []ts {
	return concat(
		hostCall3("c1", "checkout-canary.shop.svc.cluster.local", 300, false),
		hostCall3("c2", "checkout-canary.shop.svc.cluster.local", 310, true),
		hostCall3("s1", "checkout-primary.shop.svc.cluster.local", 20, false),
		hostCall3("s2", "checkout-primary.shop.svc.cluster.local", 25, false),
	)
}

// hostEdges starts f and returns the edges of hostTarget from a Source
// with o (its QueryURL set to f's), failing the test on error.
func hostEdges(t *testing.T, f *fakeJaeger, o Options) map[analysis.Edge]analysis.EdgePair {
	t.Helper()
	o.QueryURL = f.start(t).URL
	got, err := newSource(t, o).Edges(context.Background(), hostTarget, since, until)
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	return got
}
