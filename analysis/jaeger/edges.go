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
// In version mode (subset mode, and host mode with versions set) both sides
// share the service name t.Service and differ in service.version.
//
// In host mode with both versions empty the mesh splits traffic between two
// Kubernetes hosts (Side.Host), and the analysed service's spans come in two
// conventions: every workload named after the service clients call
// (service.name t.Service, e.g. "checkout", on both sides), or each side
// named after its host's short name (Flagger-style "checkout-canary" and
// "checkout-primary"). All of these names are queried and count as the
// analysed service, renamed to t.Service in edges so that the canary's and
// the stable's calls land on the same Edge. A trace's side is, in order:
//
//  1. where the mesh sent the calls into the service: the host of the
//     caller's CLIENT span (Envoy's upstream_cluster, else http.url), or,
//     when that names neither side, the host in the service's own SERVER
//     span's inbound upstream_cluster;
//  2. failing any such host, the service.name of the service's spans, when
//     it is a side host's short name.
//
// The first rule is the only one that works when both sides share a
// service.name; the second keeps traces without mesh attributes working in
// the Flagger convention.
type matcher struct {
	service   string
	namespace string // spans of the service from another namespace are not this rollout's
	byHost    bool   // host mode without versions: sides are told apart by host
	// canary and stable are the sides' versions, or their hosts as
	// configured (Side.Host: a short name or an FQDN) when byHost.
	canary, stable string
}

// newMatcher validates t and builds its matcher. The error names what is
// missing; it is a configuration error, neither ErrNoData nor ErrUnavailable.
func newMatcher(t analysis.Target) (matcher, error) {
	if t.Service == "" {
		return matcher{}, fmt.Errorf("jaeger: target %s has no service name", t.Namespace)
	}
	m := matcher{service: t.Service, namespace: t.Namespace, canary: t.Canary.Version, stable: t.Stable.Version}
	if t.HostMode && m.canary == "" && m.stable == "" {
		m.byHost = true
		m.canary, m.stable = t.Canary.Host, t.Stable.Host
	}
	what, canary, stable := "version", m.canary, m.stable
	if m.byHost {
		// Rule 2 needs distinct short names, and distinct short names
		// imply distinct hosts.
		what, canary, stable = "host", shortName(m.canary), shortName(m.stable)
	}
	switch {
	case canary == "" || stable == "":
		return matcher{}, fmt.Errorf("jaeger: target %s/%s: canary %s %q and stable %s %q must both be set",
			t.Namespace, t.Service, what, m.canary, what, m.stable)
	case canary == stable:
		return matcher{}, fmt.Errorf("jaeger: target %s/%s: canary and stable cannot be told apart in traces (both %s %q)",
			t.Namespace, t.Service, what, canary)
	}
	return m, nil
}

// shortName is the part of a host before its first dot.
func shortName(host string) string {
	name, _, _ := strings.Cut(host, ".")
	return name
}

// services lists the service names whose traces are fetched: in host mode
// both sides' short host names, then t.Service, without repeats.
func (m matcher) services() []string {
	if !m.byHost {
		return []string{m.service}
	}
	names := []string{shortName(m.canary)}
	for _, n := range []string{shortName(m.stable), m.service} {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// isService reports whether service is a name of the analysed service.
func (m matcher) isService(service string) bool {
	service = m.local(service)
	if m.byHost {
		return service == m.service || service == shortName(m.canary) || service == shortName(m.stable)
	}
	return service == m.service
}

// name maps a span's service name to the name used in edges: every name of
// the analysed service becomes t.Service, and Istio's "<app>.<namespace>"
// form of the rollout's namespace becomes "<app>".
func (m matcher) name(service string) string {
	if m.isService(service) {
		return m.service
	}
	return m.local(service)
}

// ours reports whether s is a span of the analysed service in the rollout's
// namespace. A span that names no namespace is given the benefit of the
// doubt.
func (m matcher) ours(s span) bool {
	return m.isService(s.Service) && (m.namespace == "" || s.Namespace == "" || s.Namespace == m.namespace)
}

// sides collects which sides a trace was seen to go through.
type sides struct{ canary, stable bool }

// add records sd; sideNone records nothing.
func (ss *sides) add(sd side) {
	ss.canary = ss.canary || sd == sideCanary
	ss.stable = ss.stable || sd == sideStable
}

// side is the one side seen, or sideNone for neither or both.
func (ss sides) side() side { return pick(ss.canary, ss.stable) }

// sideOf says whether a trace went through the canary or the stable. A
// trace that went through neither, or through both, is sideNone.
func (m matcher) sideOf(spans []span) side {
	if m.byHost {
		return m.sideByHost(spans)
	}
	var seen sides
	for _, s := range spans {
		if !m.ours(s) {
			continue // another service, or the same name in another namespace
		}
		switch s.Version {
		case m.canary:
			seen.add(sideCanary)
		case m.stable:
			seen.add(sideStable)
		}
	}
	return seen.side()
}

// sideByHost is sideOf in host mode (see matcher): the hosts the mesh sent
// the service's calls to decide; only a trace without any such host falls
// back on the service.name of the service's spans.
func (m matcher) sideByHost(spans []span) side {
	byID := make(map[string]span, len(spans))
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	var routed, named sides
	for _, s := range spans {
		if !m.ours(s) {
			continue
		}
		sd := sideNone
		if p, ok := byID[s.ParentID]; ok && s.ParentID != "" && p.Kind == kindClient {
			sd = m.hostSide(p.CalledHost)
		}
		if sd == sideNone && s.Kind == kindServer {
			sd = m.hostSide(s.CalledHost)
		}
		routed.add(sd)
		named.add(m.nameSide(s.Service))
	}
	if routed.canary || routed.stable {
		return routed.side()
	}
	return named.side()
}

// hostSide is the side whose host is host, a host found in a span.
func (m matcher) hostSide(host string) side {
	return pick(m.sameHost(host, m.canary), m.sameHost(host, m.stable))
}

// nameSide is the side whose host's short name is service.
func (m matcher) nameSide(service string) side {
	return pick(service == shortName(m.canary), service == shortName(m.stable))
}

// pick is the side that matched, sideNone for neither or both.
func pick(canary, stable bool) side {
	switch {
	case canary && !stable:
		return sideCanary
	case stable && !canary:
		return sideStable
	}
	return sideNone
}

// sameHost reports whether host, found in a span, and want, a Side.Host,
// name the same Kubernetes Service. An FQDN matches itself; a short name
// (without a dot) is a Service in the rollout's namespace, as in Istio, so
// in namespace shop "checkout-canary" matches checkout-canary.shop,
// checkout-canary.shop.svc and checkout-canary.shop.svc.cluster.local (or
// any other cluster domain). Without a namespace a short name matches any
// host with that short name.
func (m matcher) sameHost(host, want string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	want = strings.TrimSuffix(strings.ToLower(want), ".")
	switch {
	case host == "" || want == "":
		return false
	case host == want:
		return true
	}
	short, full := want, host
	if strings.Contains(short, ".") {
		short, full = host, want
	}
	if strings.Contains(short, ".") {
		return false // two different FQDNs
	}
	if m.namespace == "" {
		return shortName(full) == short
	}
	inNS := short + "." + strings.ToLower(m.namespace)
	return full == inNS || full == inNS+".svc" || strings.HasPrefix(full, inNS+".svc.")
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
	var out []call
	m.eachCall(spans, func(e analysis.Edge, parent, child, measured span) {
		if e.From == e.To || (e.From != m.service && e.To != m.service) {
			return
		}
		out = append(out, call{Edge: e, Ms: measured.DurationMs(), Failed: parent.Failed || child.Failed})
	})
	return out
}

// eachCall calls f for each call in one trace's spans: a span and its
// parent, the edge between their services, and the span that measures
// the call (the caller's CLIENT span when there is one, as the caller
// waited for it, else the callee's). The analysis and the trace view
// both read calls this way.
func (m matcher) eachCall(spans []span, f func(e analysis.Edge, parent, child, measured span)) {
	byID := make(map[string]span, len(spans))
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	for _, child := range spans {
		parent, ok := byID[child.ParentID]
		if child.ParentID == "" || !ok {
			continue
		}
		measured := child
		if parent.Kind == kindClient {
			measured = parent
		}
		f(analysis.Edge{From: m.name(parent.Service), To: m.name(child.Service)}, parent, child, measured)
	}
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

// groupByTrace groups the spans of one answer by trace ID, dropping spans
// without a trace ID and repeated spans.
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
