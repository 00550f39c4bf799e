package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// graphRollout is a rollout of checkout (v1 → v2) whose analysis began a
// minute before its latest tick, with checks cs.
func graphRollout(cs ...v1alpha1.CheckStatus) *v1alpha1.Rollout {
	since := metav1.NewTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	tick := metav1.NewTime(since.Add(time.Minute))
	r := &v1alpha1.Rollout{}
	r.Spec = v1alpha1.RolloutSpec{VirtualService: "checkout-vs", StableSubset: "v1", CanarySubset: "v2"}
	r.Status.Target = &v1alpha1.ResolvedTarget{Host: "checkout.shop.svc.cluster.local", StableVersion: "v1", CanaryVersion: "v2"}
	r.Status.Analysis = v1alpha1.AnalysisStatus{Since: &since, LastTickAt: &tick, Checks: cs}
	return r
}

const payments = "checkout → payments"

// Checks of the canary's inbound traffic that pass: 600 canary and 1,800
// stable requests over the minute.
var inboundPass = []v1alpha1.CheckStatus{
	{Check: "error-rate", Kind: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.5, Stable: 0.25, Limit: 1, Unit: "%", CanaryRequests: 600, StableRequests: 1800},
	{Check: "error-rate-slo", Kind: "error-rate-slo", Source: "prometheus", Verdict: "Pass", Canary: 0.5, Stable: 0.25, Limit: 5, Unit: "%", CanaryRequests: 600, StableRequests: 1800},
	{Check: "latency-p99", Kind: "latency-p99", Source: "prometheus", Verdict: "Pass", Canary: 98.76, Stable: 91.2, Limit: 150, Unit: "ms", CanaryRequests: 600, StableRequests: 1800},
}

// edgeWant is what a test expects of one edge.
type edgeWant struct {
	hop, from, to, source, verdict, state, label string
	failing                                      bool
	firstCheck                                   string
	canary, stable                               [3]string // rps, error rate and p99 texts
}

func sideTexts(s GraphSide) [3]string { return [3]string{s.RPSText, s.ErrorRateText, s.P99Text} }

// TestGraphOf builds the graph of rollouts in each state an edge can be
// in: its values come from metrics before traces, formatted once; its
// verdict is the worst of its checks; failing edges list their failing
// checks first.
func TestGraphOf(t *testing.T) {
	inbound := edgeWant{hop: "inbound", from: "callers", to: "service", source: "metrics", verdict: "Pass", state: "pass", label: "pass",
		firstCheck: "error-rate||prometheus", canary: [3]string{"10 req/s", "0.5%", "98.8 ms"}, stable: [3]string{"30 req/s", "0.25%", "91.2 ms"}}
	for _, tc := range []struct {
		name  string
		r     *v1alpha1.Rollout
		nodes []string // id:label:column
		edges []edgeWant
	}{
		{
			name: "a downstream hop fails in metrics while its traces pass",
			r: graphRollout(append(inboundPass[:len(inboundPass):len(inboundPass)],
				v1alpha1.CheckStatus{Check: "latency-p99", Kind: "latency-p99", Hop: payments, Source: "prometheus", Verdict: "Pass", Canary: 120, Stable: 110, Limit: 200, Unit: "ms", CanaryRequests: 300, StableRequests: 900},
				v1alpha1.CheckStatus{Check: "error-rate", Kind: "error-rate", Hop: payments, Source: "prometheus", Verdict: "Fail", Canary: 20.04, Stable: 0.1, Limit: 1, Unit: "%", CanaryRequests: 300, StableRequests: 900},
				v1alpha1.CheckStatus{Check: "call-rate", Kind: "call-rate", Hop: payments, Source: "prometheus", Verdict: "Pass", Canary: 0.5, Stable: 0.5, Limit: 0.6, Unit: "calls/req", CanaryRequests: 300, StableRequests: 900},
				v1alpha1.CheckStatus{Check: "latency-p99", Kind: "latency-p99", Hop: payments, Source: "jaeger", Verdict: "Pass", Canary: 400, Stable: 90, Limit: 500, Unit: "ms", CanaryRequests: 30, StableRequests: 90},
				v1alpha1.CheckStatus{Check: "db-conns", Kind: "custom", Source: "prometheus", Verdict: "Fail", Canary: 90, Limit: 80},
			)...),
			nodes: []string{"callers:callers:0", "stable:stable v1:1", "canary:canary v2:1", "svc:payments:payments:2"},
			edges: []edgeWant{inbound, {hop: payments, from: "service", to: "svc:payments", source: "metrics", verdict: "Fail", state: "fail", label: "fail", failing: true,
				firstCheck: "error-rate|checkout → payments|prometheus", canary: [3]string{"5 req/s", "20%", "120 ms"}, stable: [3]string{"15 req/s", "0.1%", "110 ms"}}},
		},
		{
			name: "a hop seen only in traces, a caller and a deeper call",
			r: graphRollout(append(inboundPass[:len(inboundPass):len(inboundPass)],
				v1alpha1.CheckStatus{Check: "latency-p99", Kind: "latency-p99", Hop: "frontend → checkout", Source: "jaeger", Verdict: "Inconclusive", Canary: 50, Stable: 40, Limit: 100, Unit: "ms", CanaryRequests: 6, StableRequests: 12},
				v1alpha1.CheckStatus{Check: "latency-p99", Kind: "latency-p99", Hop: payments, Source: "jaeger", Verdict: "Pass", Canary: 320.4, Stable: 79.96, Limit: 400, Unit: "ms", CanaryRequests: 60, StableRequests: 180},
				v1alpha1.CheckStatus{Check: "error-rate", Kind: "error-rate", Hop: "payments → bank", Source: "jaeger", Verdict: "Skipped", Unit: "%", CanaryRequests: 3, StableRequests: 1},
			)...),
			nodes: []string{"callers:callers:0", "stable:stable v1:1", "canary:canary v2:1", "svc:frontend:frontend:0", "svc:payments:payments:2", "svc:bank:bank:3"},
			edges: []edgeWant{inbound,
				{hop: "frontend → checkout", from: "svc:frontend", to: "service", source: "traces", verdict: "Inconclusive", state: "gathering", label: "gathering evidence",
					firstCheck: "latency-p99|frontend → checkout|jaeger", canary: [3]string{"0.1 traced req/s", "no data", "50 ms"}, stable: [3]string{"0.2 traced req/s", "no data", "40 ms"}},
				{hop: payments, from: "service", to: "svc:payments", source: "traces", verdict: "Pass", state: "pass", label: "pass",
					firstCheck: "latency-p99|checkout → payments|jaeger", canary: [3]string{"1 traced req/s", "no data", "320 ms"}, stable: [3]string{"3 traced req/s", "no data", "80 ms"}},
				{hop: "payments → bank", from: "svc:payments", to: "svc:bank", source: "traces", verdict: "Skipped", state: "nodata", label: "too few calls",
					firstCheck: "error-rate|payments → bank|jaeger", canary: [3]string{"0.05 traced req/s", "no data", "no data"}, stable: [3]string{"0.0167 traced req/s", "no data", "no data"}},
			},
		},
		{
			name: "an analysis still gathering, a source that had no data and a dry-run failure",
			r: graphRollout(
				v1alpha1.CheckStatus{Check: "error-rate", Kind: "error-rate", Source: "prometheus", Verdict: "Inconclusive", Unit: "%", CanaryRequests: 3, StableRequests: 40},
				v1alpha1.CheckStatus{Check: "error-rate", Kind: "error-rate", Hop: "checkout → (downstream)", Source: "prometheus", Verdict: "Inconclusive", NoData: true, CanaryRequests: 1},
				v1alpha1.CheckStatus{Check: "latency-p99", Kind: "latency-p99", Hop: payments, Source: "prometheus", Verdict: "Fail", DryRun: true, Canary: 900, Stable: 100, Limit: 200, Unit: "ms", CanaryRequests: 60, StableRequests: 60},
			),
			nodes: []string{"callers:callers:0", "stable:stable v1:1", "canary:canary v2:1", "svc:(downstream):(downstream):2", "svc:payments:payments:2"},
			edges: []edgeWant{
				{hop: "inbound", from: "callers", to: "service", source: "metrics", verdict: "Inconclusive", state: "gathering", label: "gathering evidence",
					firstCheck: "error-rate||prometheus", canary: [3]string{"0.05 req/s", "no data", "no data"}, stable: [3]string{"0.667 req/s", "no data", "no data"}},
				{hop: "checkout → (downstream)", from: "service", to: "svc:(downstream)", source: "metrics", verdict: "Inconclusive", state: "nodata", label: "no data",
					firstCheck: "error-rate|checkout → (downstream)|prometheus", canary: [3]string{"no data", "no data", "no data"}, stable: [3]string{"no data", "no data", "no data"}},
				{hop: payments, from: "service", to: "svc:payments", source: "metrics", verdict: "Fail", state: "fail", label: "fail (dry run)",
					firstCheck: "latency-p99|checkout → payments|prometheus", canary: [3]string{"1 req/s", "no data", "900 ms"}, stable: [3]string{"1 req/s", "no data", "100 ms"}},
			},
		},
		{
			name:  "before the first tick",
			r:     &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{VirtualService: "checkout", Workload: &v1alpha1.WorkloadRef{Deployment: "checkout"}, StableSubset: "stable", CanarySubset: "canary"}},
			nodes: []string{"callers:callers:0", "stable:stable:1", "canary:canary:1"},
			edges: []edgeWant{{hop: "inbound", from: "callers", to: "service", source: "metrics", state: "nodata", label: "no data",
				canary: [3]string{"no data", "no data", "no data"}, stable: [3]string{"no data", "no data", "no data"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graphOf(tc.r)
			if g.Service != "checkout" {
				t.Errorf("service %q, want checkout", g.Service)
			}
			var nodes []string
			for _, n := range g.Nodes {
				nodes = append(nodes, n.ID+":"+n.Label+":"+string(rune('0'+n.Column)))
			}
			if !reflect.DeepEqual(nodes, tc.nodes) {
				t.Errorf("nodes %q, want %q", nodes, tc.nodes)
			}
			if len(g.Edges) != len(tc.edges) {
				t.Fatalf("%d edges %+v, want %d", len(g.Edges), g.Edges, len(tc.edges))
			}
			for i, w := range tc.edges {
				e := g.Edges[i]
				first := ""
				if len(e.Checks) > 0 {
					first = e.Checks[0]
				}
				got := edgeWant{hop: e.Hop, from: e.From, to: e.To, source: e.Source, verdict: e.Verdict, state: e.State, label: e.StateLabel,
					failing: e.Failing, firstCheck: first, canary: sideTexts(e.Canary), stable: sideTexts(e.Stable)}
				if got != w {
					t.Errorf("edge %d:\n got %+v\nwant %+v", i, got, w)
				}
				if !strings.HasPrefix(e.Summary, w.hop+", from "+w.source+": "+w.label+". Canary "+w.canary[0]) {
					t.Errorf("edge %d summary %q", i, e.Summary)
				}
			}
		})
	}
}

// The raw numbers stand next to their texts, and a value not measured is
// absent rather than a zero.
func TestGraphSideRawValues(t *testing.T) {
	g := graphOf(graphRollout(inboundPass...))
	c := g.Edges[0].Canary
	if g.Seconds != 60 || c.RPS == nil || *c.RPS != 10 || c.ErrorRate == nil || *c.ErrorRate != 0.5 || c.P99 == nil || *c.P99 != 98.76 {
		t.Errorf("seconds %v, canary side %+v, want 60 s and 10 req/s, 0.5%%, 98.76 ms", g.Seconds, c)
	}
	// A check that names its window counts its requests over it.
	r := graphRollout(inboundPass...)
	half := metav1.NewTime(r.Status.Analysis.Since.Add(30 * time.Second))
	r.Status.Analysis.Checks[0].Since = &half
	if c := graphOf(r).Edges[0].Canary; c.RPS == nil || *c.RPS != 20 || c.RPSText != "20 req/s" {
		t.Errorf("canary side %+v over a 30 s window, want 20 req/s", c)
	}
	b, err := json.Marshal(graphOf(&v1alpha1.Rollout{}).Edges[0].Canary)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"rpsText":"no data","errorRateText":"no data","p99Text":"no data"}` {
		t.Errorf("a side with no data is %s", b)
	}
	if cs := graphOf(&v1alpha1.Rollout{}).Edges[0].Checks; cs == nil {
		t.Error("an edge with no checks lists them as null, want []")
	}
	if n := len(view(graphRollout(inboundPass...)).Graph.Edges); n != 1 {
		t.Errorf("the view's graph has %d edges, want the inbound one", n)
	}
}

// Every field of the graph's types is described in the OpenAPI document.
func TestGraphDocumented(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, vt := range []reflect.Type{reflect.TypeFor[Graph](), reflect.TypeFor[GraphNode](), reflect.TypeFor[GraphEdge](), reflect.TypeFor[GraphSide]()} {
		props := doc.Components.Schemas[vt.Name()].Properties
		for _, f := range jsonFields(vt) {
			d := viewDocs[vt]
			want := d.own[f.name] + d.differ[f.name]
			if want == "" {
				t.Errorf("%s.%s is not described in viewDocs", vt.Name(), f.name)
			}
			if got := props[f.name]["description"]; got != want {
				t.Errorf("%s.%s: description %q, want %q", vt.Name(), f.name, got, want)
			}
		}
	}
	if _, ok := doc.Components.Schemas["Rollout"].Properties["graph"]; !ok {
		t.Error("the Rollout has no graph in the document")
	}
}
