package api

import (
	"slices"
	"strings"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Graph is the canary's neighbourhood as the console draws it: Kiali's
// service graph narrowed to the one question of a canary. The callers
// call the service, whose stable and canary versions stand side by side,
// and the service calls each downstream service; every edge carries both
// versions' traffic and the verdict of its checks. It is computed here,
// once, from the latest tick's checks, so that no client ranks verdicts
// or divides counts itself.
type Graph struct {
	// Service is the service the rollout shifts, as its hops name it.
	Service string `json:"service"`
	// Seconds is how long the requests behind the rates were counted: from
	// status.analysis.since to the latest tick (0 before the first).
	Seconds float64 `json:"seconds"`
	// Nodes are the callers, the service's stable and canary versions, and
	// each other service an edge reaches, in that order.
	Nodes []GraphNode `json:"nodes"`
	// Edges are the inbound edge first, then each hop in the order the
	// analysis first saw it.
	Edges []GraphEdge `json:"edges"`
}

// GraphNode is one box of the graph.
type GraphNode struct {
	// ID is what edges name the node by: "callers", "stable", "canary", or
	// "svc:" and the service's name.
	ID string `json:"id"`
	// Kind is callers, stable, canary or service.
	Kind string `json:"kind"`
	// Label is the node as people read it: "callers", "stable v1",
	// "canary v2", "payments".
	Label string `json:"label"`
	// Column is where the node stands in the flow: 0 for callers, 1 for
	// the service's versions, 2 for the services it calls, 3 beyond.
	Column int `json:"column"`
}

// The ID of the service's two versions as an edge's end: the edge is
// drawn once from (or to) each version, with that version's values.
const graphService = "service"

// GraphEdge is one hop, with each version's traffic on it.
type GraphEdge struct {
	// Hop is the edge as the checks name it: "inbound" for the canary's
	// own traffic, or "checkout → payments".
	Hop string `json:"hop"`
	// From and To are node IDs; "service" stands for both versions.
	From string `json:"from"`
	To   string `json:"to"`
	// Source is what the values were measured from: "metrics" when
	// Prometheus measured the hop, else "traces".
	Source string `json:"source"`
	// Canary and Stable are each version's traffic on the edge.
	Canary GraphSide `json:"canary"`
	Stable GraphSide `json:"stable"`
	// Verdict is the worst of the edge's checks, from both sources: Fail,
	// Inconclusive, Pass or Skipped.
	Verdict string `json:"verdict"`
	// State is how the edge is coloured: pass, fail, gathering (evidence)
	// or nodata; StateLabel says it in words.
	State      string `json:"state"`
	StateLabel string `json:"stateLabel"`
	// Failing says a check of the edge failed and acts (not a dry run):
	// one that rolls the canary back.
	Failing bool `json:"failing"`
	// Checks are the keys of the edge's checks (readmodel.CheckKey, as
	// the series and the charts key them), failing ones first.
	Checks []string `json:"checks"`
	// Summary is the edge in one sentence, for an accessible label.
	Summary string `json:"summary"`
}

// GraphSide is one version's traffic on an edge. A value that was not
// measured is left out, and its text says "no data".
type GraphSide struct {
	// RPS is requests per second over the checks' window (the check's
	// since, else status.analysis.since, to the latest tick): traced calls
	// per second, from traces.
	RPS     *float64 `json:"rps,omitempty"`
	RPSText string   `json:"rpsText"`
	// ErrorRate is in %, from the edge's error-rate check.
	ErrorRate     *float64 `json:"errorRate,omitempty"`
	ErrorRateText string   `json:"errorRateText"`
	// P99 is in ms, from the edge's latency-p99 check.
	P99     *float64 `json:"p99,omitempty"`
	P99Text string   `json:"p99Text"`
}

// The states of an edge, and how they read.
var graphStateLabels = map[string]string{
	"pass": "pass", "fail": "fail", "gathering": "gathering evidence", "nodata": "no data",
}

const noData = "no data"

// graphOf builds r's graph from its latest tick's checks. Custom checks
// measure no edge and are left out.
func graphOf(r *v1alpha1.Rollout) Graph {
	a := r.Status.Analysis
	g := Graph{Service: serviceOf(r)}
	if a.Since != nil && a.LastTickAt != nil {
		g.Seconds = max(a.LastTickAt.Sub(a.Since.Time).Seconds(), 0)
	}
	stable, canary := versionsOf(r)
	g.Nodes = []GraphNode{
		{ID: "callers", Kind: "callers", Label: "callers", Column: 0},
		{ID: "stable", Kind: "stable", Label: versionLabel("stable", stable), Column: 1},
		{ID: "canary", Kind: "canary", Label: versionLabel("canary", canary), Column: 1},
	}
	var hops []string
	byHop := map[string][]v1alpha1.CheckStatus{"": nil}
	for _, c := range a.Checks {
		if kindOf(c) == analysis.KindCustom {
			continue
		}
		if _, seen := byHop[c.Hop]; !seen && c.Hop != "" {
			hops = append(hops, c.Hop)
		}
		byHop[c.Hop] = append(byHop[c.Hop], c)
	}
	columns := map[string]int{"callers": 0, graphService: 1}
	g.Edges = append(g.Edges, edgeOf("inbound", "callers", graphService, byHop[""], a))
	for _, hop := range hops {
		from, to := g.ends(hop, columns)
		g.Edges = append(g.Edges, edgeOf(hop, from, to, byHop[hop], a))
	}
	return g
}

// ends returns the node IDs of hop "A → B", adding the nodes it names:
// the service's end is "service", a caller of the service stands with
// the callers, and a service called by another downstream one stands a
// column further (at most 3). A hop with no arrow (a source that could
// not be read names the hop after the service) is the service's.
func (g *Graph) ends(hop string, columns map[string]int) (from, to string) {
	a, b, ok := strings.Cut(hop, " → ")
	if !ok {
		a, b = g.Service, hop
	}
	node := func(name string, column int) string {
		if name == g.Service {
			return graphService
		}
		id := "svc:" + name
		if _, ok := columns[id]; !ok {
			columns[id] = column
			g.Nodes = append(g.Nodes, GraphNode{ID: id, Kind: "service", Label: name, Column: column})
		}
		return id
	}
	if b == g.Service {
		return node(a, 0), graphService
	}
	from = node(a, 2)
	return from, node(b, min(columns[from]+1, 3))
}

// edgeOf is the edge of one hop's checks. The values come from metrics
// when Prometheus measured the hop (every request, where traces see a
// sample), else from traces.
func edgeOf(hop, from, to string, cs []v1alpha1.CheckStatus, a v1alpha1.AnalysisStatus) GraphEdge {
	e := GraphEdge{Hop: hop, From: from, To: to, Source: "metrics", Checks: []string{}}
	src := "prometheus"
	if !slices.ContainsFunc(cs, func(c v1alpha1.CheckStatus) bool { return c.Source == src && hasValues(c) }) &&
		slices.ContainsFunc(cs, func(c v1alpha1.CheckStatus) bool { return c.Source == "jaeger" }) {
		src, e.Source = "jaeger", "traces"
	}
	var failing []string
	measured := false
	for _, c := range cs {
		key := readmodel.CheckKey(c.Check, c.Hop, c.Source)
		if c.Verdict == string(analysis.Fail) && !c.DryRun {
			e.Failing = true
			failing = append(failing, key)
		} else {
			e.Checks = append(e.Checks, key)
		}
		if verdictRank(c.Verdict) > verdictRank(e.Verdict) {
			e.Verdict = c.Verdict
		}
		measured = measured || hasValues(c) || counts(c)
	}
	e.Checks = append(append(make([]string, 0, len(cs)), failing...), e.Checks...) // [], never null
	errs := pick(cs, src, analysis.KindErrorRate, analysis.KindErrorSLO)
	lat := pick(cs, src, analysis.KindLatency, analysis.KindLatencySLO)
	unit := "req/s"
	if src == "jaeger" {
		unit = "traced req/s"
	}
	counted := errs
	if counted == nil {
		counted = lat
	}
	seconds := windowOf(counted, a)
	e.Canary = side(counted, errs, lat, seconds, unit, func(c *v1alpha1.CheckStatus) (float64, float64) { return c.CanaryRequests, c.Canary })
	e.Stable = side(counted, errs, lat, seconds, unit, func(c *v1alpha1.CheckStatus) (float64, float64) { return c.StableRequests, c.Stable })
	e.State = edgeState(e.Verdict, measured)
	e.StateLabel = graphStateLabels[e.State]
	if e.Verdict == string(analysis.Fail) && !e.Failing {
		e.StateLabel = "fail (dry run)"
	} else if e.Verdict == string(analysis.Skipped) && measured {
		e.StateLabel = "too few calls"
	}
	e.Summary = hop + ", from " + e.Source + ": " + e.StateLabel +
		". Canary " + sideText(e.Canary) + "; stable " + sideText(e.Stable) + "."
	return e
}

// side is one version's values; get reads that version's requests and
// value from a check.
func side(counted, errs, lat *v1alpha1.CheckStatus, seconds float64, unit string, get func(*v1alpha1.CheckStatus) (float64, float64)) GraphSide {
	s := GraphSide{RPSText: noData, ErrorRateText: noData, P99Text: noData}
	if counted != nil && seconds > 0 && (hasValues(*counted) || counts(*counted)) {
		n, _ := get(counted)
		rps := n / seconds
		s.RPS, s.RPSText = &rps, analysis.FormatValue(rps, unit)
	}
	if errs != nil && hasValues(*errs) {
		_, v := get(errs)
		s.ErrorRate, s.ErrorRateText = &v, analysis.FormatValue(v, "%")
	}
	if lat != nil && hasValues(*lat) {
		_, v := get(lat)
		s.P99, s.P99Text = &v, analysis.FormatValue(v, "ms")
	}
	return s
}

// windowOf is how long c counted its requests: from its window's start
// (the analysis start, for a status that does not name it) to the
// latest tick; 0 when either is unknown.
func windowOf(c *v1alpha1.CheckStatus, a v1alpha1.AnalysisStatus) float64 {
	since := a.Since
	if c != nil && c.Since != nil {
		since = c.Since
	}
	if c == nil || since == nil || a.LastTickAt == nil {
		return 0
	}
	return max(a.LastTickAt.Sub(since.Time).Seconds(), 0)
}

// counts says c read request counts, even too few to judge.
func counts(c v1alpha1.CheckStatus) bool {
	return !c.NoData && c.CanaryRequests+c.StableRequests > 0
}

func sideText(s GraphSide) string {
	return s.RPSText + ", errors " + s.ErrorRateText + ", p99 " + s.P99Text
}

// pick returns the first check of source src of the first kind in kinds
// that has one, or nil.
func pick(cs []v1alpha1.CheckStatus, src string, kinds ...analysis.Kind) *v1alpha1.CheckStatus {
	for _, k := range kinds {
		for i := range cs {
			if cs[i].Source == src && kindOf(cs[i]) == k {
				return &cs[i]
			}
		}
	}
	return nil
}

// edgeState colours an edge by its worst verdict; an edge with nothing
// measured has no data, whatever its checks wait for.
func edgeState(verdict string, measured bool) string {
	switch {
	case verdict == string(analysis.Fail):
		return "fail"
	case !measured || verdict == string(analysis.Skipped) || verdict == "":
		return "nodata"
	case verdict == string(analysis.Inconclusive):
		return "gathering"
	}
	return "pass"
}

// verdictRank orders verdicts from the least to the most telling, so that
// an edge shows its worst check.
func verdictRank(v string) int {
	return slices.Index([]string{"", string(analysis.Skipped), string(analysis.Pass), string(analysis.Inconclusive), string(analysis.Fail)}, v)
}

// hasValues is false for a check that measured nothing: one with no
// data, or skipped, which leaves its limit at zero (a judged check always
// has one).
func hasValues(c v1alpha1.CheckStatus) bool {
	return !c.NoData && (c.Verdict == string(analysis.Pass) || c.Verdict == string(analysis.Fail) || c.Limit > 0 || c.Canary > 0 || c.Stable > 0)
}

// kindOf is what c measures; a status written before checks carried
// their kind names the kind by the check's name.
func kindOf(c v1alpha1.CheckStatus) analysis.Kind {
	if c.Kind != "" {
		return analysis.Kind(c.Kind)
	}
	return analysis.Kind(c.Check)
}

// serviceOf names the service as its hops do: the analysis names each
// downstream hop in metrics "<service> → <called>". Before any hop, it
// is the host preflight resolved, then the spec's host, then the
// VirtualService, short names all.
func serviceOf(r *v1alpha1.Rollout) string {
	for _, c := range r.Status.Analysis.Checks {
		if a, _, ok := strings.Cut(c.Hop, " → "); ok && c.Source == "prometheus" {
			return a
		}
	}
	host := r.Spec.Host
	if t := r.Status.Target; t != nil && t.Host != "" {
		host = t.Host
	}
	if host == "" {
		host = r.Spec.VirtualService
	}
	s, _, _ := strings.Cut(host, ".")
	return s
}

// versionsOf names the two versions: the version labels preflight found,
// else the subsets or hosts of the spec.
func versionsOf(r *v1alpha1.Rollout) (stable, canary string) {
	if t := r.Status.Target; t != nil && t.StableVersion != "" && t.CanaryVersion != "" {
		return t.StableVersion, t.CanaryVersion
	}
	if r.Spec.StableHost != "" {
		return r.Spec.StableHost, r.Spec.CanaryHost
	}
	return r.Spec.StableSubset, r.Spec.CanarySubset
}

// versionLabel is "stable v1"; a version named like its track (a
// delivered workload's subsets are "stable" and "canary") is said once.
func versionLabel(track, version string) string {
	if version == "" || version == track {
		return track
	}
	return track + " " + version
}
