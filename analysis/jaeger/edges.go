package jaeger

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/serin-dev/serin/analysis"
)

// side says which version of the analysed service a trace went through.
type side int

const (
	sideNone side = iota // neither, or both: the trace is skipped
	sideCanary
	sideStable
)

// matcher tells the canary's traces from the stable's.
//
// In version mode (the default, and host mode with versions set) both sides
// share the service name t.Service and differ in service.version.
//
// In host mode with both versions empty, each side is its own service: the
// short name (before the first dot) of its Side.Host, e.g. "checkout-canary"
// for checkout-canary.shop.svc.cluster.local. Both names are queried, and in
// the returned edges both are renamed to t.Service so that the canary's and
// the stable's calls land on the same Edge.
type matcher struct {
	service        string
	namespace      string // spans of the service from another namespace are not this rollout's
	byName         bool   // host mode: sides are told apart by service.name
	canary, stable string // versions, or service names when byName
}

// newMatcher validates t and builds its matcher. The error names what is
// missing; it is a configuration error, neither ErrNoData nor ErrUnavailable.
func newMatcher(t analysis.Target) (matcher, error) {
	if t.Service == "" {
		return matcher{}, fmt.Errorf("jaeger: target %s has no service name", t.Namespace)
	}
	m := matcher{service: t.Service, namespace: t.Namespace, canary: t.Canary.Version, stable: t.Stable.Version}
	if t.HostMode && m.canary == "" && m.stable == "" {
		m.byName = true
		m.canary, m.stable = shortName(t.Canary.Host), shortName(t.Stable.Host)
	}
	what := "version"
	if m.byName {
		what = "host"
	}
	switch {
	case m.canary == "" || m.stable == "":
		return matcher{}, fmt.Errorf("jaeger: target %s/%s: canary %s %q and stable %s %q must both be set",
			t.Namespace, t.Service, what, m.canary, what, m.stable)
	case m.canary == m.stable:
		return matcher{}, fmt.Errorf("jaeger: target %s/%s: canary and stable cannot be told apart in traces (both %s %q)",
			t.Namespace, t.Service, what, m.canary)
	}
	return m, nil
}

// shortName is the part of a host before its first dot.
func shortName(host string) string {
	name, _, _ := strings.Cut(host, ".")
	return name
}

// services lists the service names whose traces are fetched.
func (m matcher) services() []string {
	if m.byName {
		return []string{m.canary, m.stable}
	}
	return []string{m.service}
}

// name maps a span's service name to the name used in edges: in host mode
// both sides' names become the analysed service's.
func (m matcher) name(service string) string {
	if m.byName && (service == m.canary || service == m.stable) {
		return m.service
	}
	return service
}

// sideOf says whether a trace went through the canary or the stable. A
// trace that went through neither, or through both, is sideNone.
func (m matcher) sideOf(spans []span) side {
	var canary, stable bool
	for _, s := range spans {
		if m.namespace != "" && s.Namespace != "" && s.Namespace != m.namespace {
			continue // the same service name in another namespace
		}
		key := s.Version
		if m.byName {
			key = s.Service
		} else if s.Service != m.service {
			continue
		}
		canary = canary || key == m.canary
		stable = stable || key == m.stable
	}
	switch {
	case canary && !stable:
		return sideCanary
	case stable && !canary:
		return sideStable
	}
	return sideNone
}

// call is one cross-service hop found in a trace.
type call struct {
	Edge   analysis.Edge
	Ms     float64
	Failed bool
}

// traceCalls returns the hops of one trace that touch the analysed service.
// A hop is a span whose parent belongs to another service: parent's service
// → span's service. Its duration is the parent's when the parent is a CLIENT
// span (what the caller waited, network included), else the child's. It
// failed when either span did. Spans whose parent is not in the trace
// (partial traces) are not children of anything and are skipped.
func traceCalls(spans []span, m matcher) []call {
	byID := make(map[string]span, len(spans))
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	var out []call
	for _, child := range spans {
		if child.ParentID == "" {
			continue
		}
		parent, ok := byID[child.ParentID]
		if !ok {
			continue
		}
		e := analysis.Edge{From: m.name(parent.Service), To: m.name(child.Service)}
		if e.From == e.To || (e.From != m.service && e.To != m.service) {
			continue
		}
		ms := child.DurationMs()
		if parent.Kind == kindClient {
			ms = parent.DurationMs()
		}
		out = append(out, call{Edge: e, Ms: ms, Failed: parent.Failed || child.Failed})
	}
	return out
}

// sideStats accumulates one side of one edge.
type sideStats struct {
	ms     []float64
	calls  []analysis.Call
	errors int
	// Example call for CanaryTraceID: the slowest failed call if any
	// failed, else the slowest call.
	exTrace  string
	exMs     float64
	exFailed bool
}

// add records one call of trace traceID.
func (a *sideStats) add(c call, traceID string) {
	a.ms = append(a.ms, c.Ms)
	a.calls = append(a.calls, analysis.Call{Ms: c.Ms, Failed: c.Failed, TraceID: traceID})
	if c.Failed {
		a.errors++
	}
	better := a.exTrace == "" ||
		(c.Failed && !a.exFailed) ||
		(c.Failed == a.exFailed && c.Ms > a.exMs)
	if better {
		a.exTrace, a.exMs, a.exFailed = traceID, c.Ms, c.Failed
	}
}

// stats turns the accumulated calls into analysis.Stats.
func (a *sideStats) stats() analysis.Stats {
	return analysis.Stats{
		Requests: float64(len(a.ms)),
		Errors:   float64(a.errors),
		P99Ms:    p99(a.ms),
	}
}

// p99 is the nearest-rank 99th percentile of values, NaN when there are
// none. It sorts values in place.
func p99(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	slices.Sort(values)
	rank := int(math.Ceil(0.99 * float64(len(values))))
	return values[max(rank, 1)-1]
}

// tally counts how the fetched traces were used, for the no-data message.
type tally struct {
	traces, canary, stable int
}

// computeEdges computes per-edge statistics of the canary's and the
// stable's traces. traces maps trace IDs to their spans; a trace that went
// through neither side (another version) or both is skipped. Traces are
// visited in ID order so that the example trace is deterministic.
func computeEdges(traces map[string][]span, m matcher) (map[analysis.Edge]analysis.EdgePair, tally) {
	type pair struct{ canary, stable sideStats }
	acc := map[analysis.Edge]*pair{}
	n := tally{traces: len(traces)}
	for _, id := range slices.Sorted(maps.Keys(traces)) {
		sd := m.sideOf(traces[id])
		switch sd {
		case sideCanary:
			n.canary++
		case sideStable:
			n.stable++
		default:
			continue
		}
		for _, c := range traceCalls(traces[id], m) {
			p := acc[c.Edge]
			if p == nil {
				p = &pair{}
				acc[c.Edge] = p
			}
			if sd == sideCanary {
				p.canary.add(c, id)
			} else {
				p.stable.add(c, id)
			}
		}
	}
	out := make(map[analysis.Edge]analysis.EdgePair, len(acc))
	for e, p := range acc {
		out[e] = analysis.EdgePair{
			Pair:          analysis.Pair{Canary: p.canary.stats(), Stable: p.stable.stats()},
			CanaryTraceID: p.canary.exTrace,
			CanaryCalls:   p.canary.calls,
			StableCalls:   p.stable.calls,
		}
	}
	return out, n
}

// groupByTrace groups spans by trace ID, dropping duplicates (the same span
// returned by two queries in host mode).
func groupByTrace(spans []span) map[string][]span {
	out := map[string][]span{}
	seen := map[[2]string]bool{}
	for _, s := range spans {
		k := [2]string{s.TraceID, s.SpanID}
		if s.TraceID == "" || seen[k] {
			continue
		}
		seen[k] = true
		out[s.TraceID] = append(out[s.TraceID], s)
	}
	return out
}
