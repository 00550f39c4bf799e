package jaeger

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/serin-dev/serin/analysis"
)

// versionMode is the matcher of checkout v2 (canary) against v1 (stable).
var versionMode = matcher{service: "checkout", canary: "v2", stable: "v1"}

// sp builds a span for the pure tests: service, version, kind, duration.
func sp(id, parent, svc, ver string, kind int, durMs float64) span {
	return span{TraceID: "t", SpanID: id, ParentID: parent, Service: svc, Version: ver,
		Kind: kind, StartNs: 1e9, EndNs: 1e9 + int64(durMs*1e6)}
}

// failed marks a span failed.
func failed(s span) span { s.Failed = true; return s }

func TestTraceCalls(t *testing.T) {
	edge := func(from, to string) analysis.Edge { return analysis.Edge{From: from, To: to} }
	tests := []struct {
		name  string
		spans []span
		want  []call
	}{{
		name: "client span duration is the hop's",
		spans: []span{
			sp("c1", "", "checkout", "v2", kindClient, 300),
			sp("p0", "c1", "payments", "", kindServer, 250),
		},
		want: []call{{edge("checkout", "payments"), 300, false}},
	}, {
		name: "parent not a client span: the child's duration",
		spans: []span{
			sp("f0", "", "frontend", "", kindServer, 90),
			sp("c0", "f0", "checkout", "v2", kindServer, 40),
		},
		want: []call{{edge("frontend", "checkout"), 40, false}},
	}, {
		name: "missing parent (partial trace) is skipped",
		spans: []span{
			sp("c0", "gone", "checkout", "v2", kindServer, 40),
			sp("c1", "c0", "checkout", "v2", kindClient, 30),
			sp("p0", "c1", "payments", "", kindServer, 20),
		},
		want: []call{{edge("checkout", "payments"), 30, false}},
	}, {
		name: "same-service links are not hops",
		spans: []span{
			sp("c0", "", "checkout", "v2", kindServer, 40),
			sp("c1", "c0", "checkout", "v2", 1, 30),
		},
		want: nil,
	}, {
		name: "hops not touching the service are left out",
		spans: []span{
			sp("p1", "", "payments", "", kindClient, 10),
			sp("b0", "p1", "bank", "", kindServer, 8),
		},
		want: nil,
	}, {
		name: "error status on the caller fails the call",
		spans: []span{
			failed(sp("c1", "", "checkout", "v2", kindClient, 5)),
			sp("p0", "c1", "payments", "", kindServer, 4),
		},
		want: []call{{edge("checkout", "payments"), 5, true}},
	}, {
		name: "error on the callee fails the call",
		spans: []span{
			sp("c1", "", "checkout", "v2", kindClient, 5),
			failed(sp("p0", "c1", "payments", "", kindServer, 4)),
		},
		want: []call{{edge("checkout", "payments"), 5, true}},
	}, {
		name: "negative durations (clock skew) count as 0",
		spans: []span{
			{SpanID: "c1", Service: "checkout", Kind: kindClient, StartNs: 10, EndNs: 5},
			sp("p0", "c1", "payments", "", kindServer, 4),
		},
		want: []call{{edge("checkout", "payments"), 0, false}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := traceCalls(tt.spans, versionMode); !slices.Equal(got, tt.want) {
				t.Errorf("traceCalls = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTraceCallsHostModeRenamesBothSides(t *testing.T) {
	m := matcher{service: "checkout", byHost: true, canary: "checkout-canary", stable: "checkout-primary"}
	spans := []span{
		sp("f1", "", "frontend", "", kindClient, 50),
		sp("c0", "f1", "checkout-canary", "", kindServer, 45),
		sp("c1", "c0", "checkout-canary", "", kindClient, 30),
		sp("p0", "c1", "payments", "", kindServer, 20),
	}
	want := []call{
		{analysis.Edge{From: "frontend", To: "checkout"}, 50, false},
		{analysis.Edge{From: "checkout", To: "payments"}, 30, false},
	}
	if got := traceCalls(spans, m); !slices.Equal(got, want) {
		t.Errorf("traceCalls = %+v, want %+v", got, want)
	}
}

func nsSpan(s span, ns string) span { s.Namespace = ns; return s }

func TestSideOf(t *testing.T) {
	inShop := versionMode
	inShop.namespace = "shop"
	host := matcher{service: "checkout", byHost: true, canary: "checkout-canary", stable: "checkout"}
	tests := []struct {
		name  string
		m     matcher
		spans []span
		want  side
	}{
		{"canary version", versionMode, []span{sp("a", "", "checkout", "v2", 0, 1)}, sideCanary},
		{"stable version", versionMode, []span{sp("a", "", "checkout", "v1", 0, 1)}, sideStable},
		{"other version", versionMode, []span{sp("a", "", "checkout", "v3", 0, 1)}, sideNone},
		{"no version", versionMode, []span{sp("a", "", "checkout", "", 0, 1)}, sideNone},
		{"version of another service", versionMode, []span{sp("a", "", "payments", "v2", 0, 1)}, sideNone},
		{"both versions", versionMode, []span{sp("a", "", "checkout", "v2", 0, 1), sp("b", "", "checkout", "v1", 0, 1)}, sideNone},
		{"host mode canary", host, []span{sp("a", "", "checkout-canary", "", 0, 1)}, sideCanary},
		{"host mode stable", host, []span{sp("a", "", "checkout", "", 0, 1)}, sideStable},
		{"host mode neither", host, []span{sp("a", "", "payments", "", 0, 1)}, sideNone},
		{"the same service in this namespace", inShop, []span{nsSpan(sp("a", "", "checkout", "v2", 0, 1), "shop")}, sideCanary},
		{"the same service in another namespace", inShop, []span{nsSpan(sp("a", "", "checkout", "v2", 0, 1), "staging")}, sideNone},
		{"a span that names no namespace", inShop, []span{sp("a", "", "checkout", "v1", 0, 1)}, sideStable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.sideOf(tt.spans); got != tt.want {
				t.Errorf("sideOf = %v, want %v", got, tt.want)
			}
		})
	}
}

// Matchers of checkout in namespace shop split between the hosts
// checkout-canary and checkout-primary (hostShop), or checkout-canary and
// checkout itself (hostSelf), with both conventions of naming spans.
var (
	hostShop = matcher{service: "checkout", namespace: "shop", byHost: true,
		canary: "checkout-canary", stable: "checkout-primary.shop.svc.cluster.local"}
	hostSelf = matcher{service: "checkout", namespace: "shop", byHost: true,
		canary: "checkout-canary", stable: "checkout"}
)

// into is a hop into the analysed service: frontend's CLIENT span, sent to
// called, and its child SERVER span of svc, served as served. Span IDs
// start with prefix, so that a trace can hold several hops.
func into(prefix, called, svc, served string) []span {
	c := sp(prefix+"f1", "", "frontend", "", kindClient, 10)
	c.CalledHost = called
	k := sp(prefix+"k0", prefix+"f1", svc, "", kindServer, 8)
	k.CalledHost = served
	return []span{c, k}
}

func TestSideOfHostMode(t *testing.T) {
	inStaging := func(spans []span) []span { spans[1].Namespace = "staging"; return spans }
	toPayments := func(spans []span) []span { spans[1].Service = "payments"; return spans }
	tests := []struct {
		name  string
		m     matcher
		spans []span
		want  side
	}{
		{"routed to the canary's FQDN (short host)", hostShop,
			into("", "checkout-canary.shop.svc.cluster.local", "checkout", ""), sideCanary},
		{"routed to the stable's FQDN (FQDN host)", hostShop,
			into("", "checkout-primary.shop.svc.cluster.local", "checkout", ""), sideStable},
		{"routed to a short host name", hostShop, into("", "checkout-canary", "checkout", ""), sideCanary},
		{"a host of the same name in another namespace", hostShop,
			into("", "checkout-canary.staging.svc.cluster.local", "checkout", ""), sideNone},
		{"the routed host beats the service.name", hostSelf,
			into("", "checkout-canary.shop.svc.cluster.local", "checkout", ""), sideCanary},
		{"the stable host is the service's own", hostSelf,
			into("", "checkout.shop.svc.cluster.local", "checkout", ""), sideStable},
		{"the caller names the service's host: the server's inbound cluster decides", hostShop,
			into("", "checkout.shop.svc.cluster.local", "checkout", "checkout-canary.shop.svc.cluster.local"), sideCanary},
		{"no hosts: the service.name decides (Flagger)", hostShop, into("", "", "checkout-primary", ""), sideStable},
		{"no hosts and the shared name: neither", hostShop, into("", "", "checkout", ""), sideNone},
		{"hosts that name neither side: the service.name decides", hostShop,
			into("", "checkout.shop.svc.cluster.local", "checkout-canary", ""), sideCanary},
		{"calls into both sides", hostShop, append(
			into("a", "checkout-canary.shop.svc.cluster.local", "checkout", ""),
			into("b", "checkout-primary.shop.svc.cluster.local", "checkout", "")...), sideNone},
		{"a call routed to the canary host that another service served", hostShop,
			toPayments(into("", "checkout-canary.shop.svc.cluster.local", "checkout", "")), sideNone},
		{"the service in another namespace", hostShop,
			inStaging(into("", "checkout-canary.shop.svc.cluster.local", "checkout", "")), sideNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.sideOf(tt.spans); got != tt.want {
				t.Errorf("sideOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSameHost(t *testing.T) {
	tests := []struct {
		ns, host, want string
		same           bool
	}{
		{"shop", "checkout-canary.shop.svc.cluster.local", "checkout-canary", true},
		{"shop", "checkout-canary", "checkout-canary.shop.svc.cluster.local", true},
		{"shop", "checkout-canary.shop.svc.corp.example", "checkout-canary", true},
		{"shop", "checkout-canary.shop", "checkout-canary", true},
		{"shop", "Checkout-Canary.shop.svc.cluster.local.", "checkout-canary.shop.svc.cluster.local", true},
		{"shop", "checkout-canary", "checkout-canary", true},
		{"shop", "checkout-canary.staging.svc.cluster.local", "checkout-canary", false},
		{"shop", "checkout-canary-2.shop.svc.cluster.local", "checkout-canary", false},
		{"shop", "checkout-canary.shop.svc.cluster.local", "checkout-canary.staging.svc.cluster.local", false},
		{"shop", "", "checkout-canary", false},
		{"", "checkout-canary.anywhere.svc.cluster.local", "checkout-canary", true},
	}
	for _, tt := range tests {
		m := matcher{namespace: tt.ns}
		if got := m.sameHost(tt.host, tt.want); got != tt.same {
			t.Errorf("sameHost(%q, %q) in namespace %q = %v, want %v", tt.host, tt.want, tt.ns, got, tt.same)
		}
	}
}

func TestServicesAndNames(t *testing.T) {
	tests := []struct {
		m    matcher
		want []string
	}{
		{versionMode, []string{"checkout"}},
		{hostShop, []string{"checkout-canary", "checkout-primary", "checkout"}},
		{hostSelf, []string{"checkout-canary", "checkout"}},
	}
	for _, tt := range tests {
		if got := tt.m.services(); !slices.Equal(got, tt.want) {
			t.Errorf("services of %+v = %v, want %v", tt.m, got, tt.want)
		}
	}
	for svc, want := range map[string]string{
		"checkout": "checkout", "checkout-canary": "checkout", "checkout-primary": "checkout", "payments": "payments",
	} {
		if got := hostShop.name(svc); got != want {
			t.Errorf("host mode name(%q) = %q, want %q", svc, got, want)
		}
	}
	if got := versionMode.name("checkout-canary"); got != "checkout-canary" {
		t.Errorf("version mode name(checkout-canary) = %q, want it unchanged", got)
	}
}

func TestNewMatcher(t *testing.T) {
	side := func(v, h string) analysis.Side { return analysis.Side{Version: v, Host: h} }
	tests := []struct {
		name    string
		t       analysis.Target
		want    matcher
		wantErr string
	}{
		{"versions", analysis.Target{Service: "checkout", Canary: side("v2", ""), Stable: side("v1", "")},
			versionMode, ""},
		{"host mode with versions uses versions",
			analysis.Target{Service: "checkout", HostMode: true, Canary: side("v2", "a.ns"), Stable: side("v1", "b.ns")},
			versionMode, ""},
		{"host mode by host",
			analysis.Target{Service: "checkout", HostMode: true,
				Canary: side("", "checkout-canary.shop.svc.cluster.local"), Stable: side("", "checkout.shop")},
			matcher{service: "checkout", byHost: true, canary: "checkout-canary.shop.svc.cluster.local", stable: "checkout.shop"}, ""},
		{"missing stable host", analysis.Target{Service: "checkout", HostMode: true, Canary: side("", "checkout-canary")},
			matcher{}, `canary host "checkout-canary" and stable host "" must both be set`},
		{"no service", analysis.Target{Namespace: "shop"}, matcher{}, "no service name"},
		{"missing canary version", analysis.Target{Service: "checkout", Stable: side("v1", "")},
			matcher{}, `canary version "" and stable version "v1" must both be set`},
		{"same versions", analysis.Target{Service: "checkout", Canary: side("v1", ""), Stable: side("v1", "")},
			matcher{}, `both version "v1"`},
		{"same short host names",
			analysis.Target{Service: "checkout", HostMode: true, Canary: side("", "checkout.a"), Stable: side("", "checkout.b")},
			matcher{}, `both host "checkout"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newMatcher(tt.t)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newMatcher error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("newMatcher = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestP99(t *testing.T) {
	seq := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(n - i) // reversed, to check the sort
		}
		return out
	}
	tests := []struct {
		name   string
		values []float64
		want   float64
	}{
		{"one value", []float64{7}, 7},
		{"two values: the larger", []float64{9, 3}, 9},
		{"100 values: the 99th", seq(100), 99},
		{"101 values: the 100th", seq(101), 100},
		{"1000 values: the 990th", seq(1000), 990},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p99(tt.values); got != tt.want {
				t.Errorf("p99 = %v, want %v", got, tt.want)
			}
		})
	}
	if got := p99(nil); !math.IsNaN(got) {
		t.Errorf("p99(nil) = %v, want NaN", got)
	}
}

func TestComputeEdgesExampleTrace(t *testing.T) {
	trace := func(id, ver string, ms float64, fail bool) []span {
		c := sp("c1", "", "checkout", ver, kindClient, ms)
		p := sp("p0", "c1", "payments", "", kindServer, ms-1)
		p.Failed = fail
		c.TraceID, p.TraceID = id, id
		return []span{c, p}
	}
	tests := []struct {
		name      string
		traces    map[string][]span
		wantTrace string
	}{
		{"slowest when none failed", map[string][]span{
			"a": trace("a", "v2", 10, false), "b": trace("b", "v2", 90, false), "c": trace("c", "v2", 20, false),
		}, "b"},
		{"a failed call beats a slower one", map[string][]span{
			"a": trace("a", "v2", 10, true), "b": trace("b", "v2", 90, false),
		}, "a"},
		{"slowest failed call", map[string][]span{
			"a": trace("a", "v2", 10, true), "b": trace("b", "v2", 90, false), "c": trace("c", "v2", 30, true),
		}, "c"},
		{"never a stable trace", map[string][]span{
			"a": trace("a", "v2", 10, false), "s": trace("s", "v1", 900, true),
		}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := computeEdges(tt.traces, versionMode)
			e := got[analysis.Edge{From: "checkout", To: "payments"}]
			if e.CanaryTraceID != tt.wantTrace {
				t.Errorf("CanaryTraceID = %q, want %q", e.CanaryTraceID, tt.wantTrace)
			}
		})
	}
}

func TestComputeEdgesOneSideOnly(t *testing.T) {
	c := sp("c1", "", "checkout", "v1", kindClient, 12)
	p := sp("p0", "c1", "payments", "", kindServer, 10)
	got, n := computeEdges(map[string][]span{"t": {c, p}}, versionMode)
	e := got[analysis.Edge{From: "checkout", To: "payments"}]
	if n != (tally{traces: 1, stable: 1}) {
		t.Errorf("tally = %+v", n)
	}
	if e.Stable.Requests != 1 || e.Stable.P99Ms != 12 || e.CanaryTraceID != "" {
		t.Errorf("stable = %+v, trace %q", e.Stable, e.CanaryTraceID)
	}
	if e.Canary.Requests != 0 || !math.IsNaN(e.Canary.P99Ms) {
		t.Errorf("canary without calls = %+v, want 0 requests and NaN p99", e.Canary)
	}
}
