package jaeger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/serin-dev/serin/analysis"
)

// A trace is read by ID for a person (the console's waterfall), from API
// v3's /api/v3/traces/{id} rather than v1's /api/traces/{id}, for the same
// reasons as the searches (see the package doc): its OTLP JSON carries the
// parent span, the kind and the status, and reading it with decodeTraces
// tells errors and versions apart exactly as the analysis does.

// maxTraceBody bounds one trace's answer: a trace of MaxTraceSpans spans
// with Envoy's tags is well under a megabyte.
const maxTraceBody = 8 << 20

// MaxTraceSpans bounds the spans Trace lays out; a trace with more (a
// fan-out of thousands of calls) keeps its first ones in tree order and
// says how many it left out.
const MaxTraceSpans = 500

// traceIDPattern is what a trace ID may be: hex, as decodeTraces
// normalises IDs, so that an ID can never change the path it is put in.
var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{1,32}$`)

// Trace fetches trace id from Jaeger within Timeout (waiting for a slot
// among MaxInFlight like the searches) and lays it out: each span's
// offset from the trace's start, its duration, whether it failed, and
// which side of t emitted it, decided as Edges decides (service.version or
// istio.canonical_revision; in host mode the host the mesh routed the call
// to). It marks the canary's span of the call on hop that failed, else of
// the slowest call on hop, as Edges picks a hop's example trace; with no
// call on hop (or a zero hop), the canary's failed or slowest span.
//
// An ID that is not hex is an error that names it. It wraps
// analysis.ErrNoData when Jaeger does not have the trace (any more: its
// storage keeps a bounded number of traces), and analysis.ErrUnavailable,
// with the URL, when Jaeger could not be asked, its answer was larger than
// 8 MiB or did not parse, or ctx ended first.
func (s *Source) Trace(ctx context.Context, t analysis.Target, hop analysis.Edge, id string) (analysis.Trace, error) {
	id = strings.ToLower(id)
	if !traceIDPattern.MatchString(id) {
		return analysis.Trace{}, fmt.Errorf("jaeger: bad trace ID %q: want up to 32 hex digits", id)
	}
	u := s.base.JoinPath("api", "v3", "traces", id)
	var spans []span
	var names map[string]string
	missing := false
	// Reads of one trace are not searches: they are bounded like them but
	// counted by the Observer only.
	err := s.get(ctx, u, new(atomic.Int64), func(resp *http.Response) error {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxTraceBody+1))
		switch {
		case err != nil:
			return err
		case len(body) > maxTraceBody:
			return fmt.Errorf("answer larger than %d bytes", maxTraceBody)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			if spans, err = decodeTraces(bytes.NewReader(body)); err != nil {
				return err
			}
			names, err = spanNames(body)
			return err
		case http.StatusNotFound:
			if isNoTraces(string(body)) {
				missing = true
				return nil
			}
			return fmt.Errorf("HTTP 404 (is this Jaeger with API v3?): %s", readSnippet(bytes.NewReader(body)))
		default:
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, readSnippet(bytes.NewReader(body)))
		}
	})
	if err != nil {
		return analysis.Trace{}, fmt.Errorf("jaeger: GET %s: %w: %w", u.Redacted(), analysis.ErrUnavailable, err)
	}
	spans = ofTrace(spans, id)
	if missing || len(spans) == 0 {
		return analysis.Trace{}, fmt.Errorf("jaeger: no trace %s (Jaeger keeps a bounded number of traces): %w", id, analysis.ErrNoData)
	}
	return layout(spans, names, t, hop), nil
}

// ofTrace keeps the spans of trace id, once each. An ID given with fewer
// than 32 digits matches the same ID padded with zeros.
func ofTrace(spans []span, id string) []span {
	want := strings.TrimLeft(id, "0")
	seen := map[string]bool{}
	var out []span
	for _, sp := range spans {
		if strings.TrimLeft(sp.TraceID, "0") != want || seen[sp.SpanID] {
			continue
		}
		seen[sp.SpanID] = true
		out = append(out, sp)
	}
	return out
}

// spanNames reads the operation name of every span of an API v3 answer
// that decodeTraces accepted, by span ID.
func spanNames(body []byte) (map[string]string, error) {
	type named struct {
		ScopeSpans []struct {
			Spans []struct {
				SpanID string `json:"spanId"`
				Name   string `json:"name"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	}
	out := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var env struct {
			Result *struct {
				ResourceSpans []named `json:"resourceSpans"`
			} `json:"result"`
			ResourceSpans []named `json:"resourceSpans"`
		}
		err := dec.Decode(&env)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode span names: %w", err)
		}
		rss := env.ResourceSpans
		if env.Result != nil {
			rss = env.Result.ResourceSpans
		}
		for _, rs := range rss {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out[normID(sp.SpanID)] = sp.Name
				}
			}
		}
	}
}

// sideName is a side as a Trace says it.
func sideName(sd side) string {
	switch sd {
	case sideCanary:
		return analysis.SideCanary
	case sideStable:
		return analysis.SideStable
	}
	return ""
}

// layout lays out the spans of one trace for t and hop (see Trace). A
// target whose sides cannot be told apart leaves every side empty and
// marks the trace's failed or slowest span.
func layout(spans []span, names map[string]string, t analysis.Target, hop analysis.Edge) analysis.Trace {
	m, err := newMatcher(t)
	matched := err == nil
	sides := map[string]side{}
	out := analysis.Trace{TraceID: spans[0].TraceID}
	if matched {
		sides = m.spanSides(spans)
		out.Side = sideName(m.sideOf(spans))
	}
	ordered, depth := treeOrder(spans)
	first, last := ordered[0].StartNs, ordered[0].EndNs
	for _, sp := range ordered {
		first, last = min(first, sp.StartNs), max(last, sp.EndNs)
	}
	out.DurationUs = micros(last - first)
	var pk markPick
	if matched && hop != (analysis.Edge{}) {
		pk = m.hopMark(spans, sides, hop)
	}
	if pk.id == "" {
		pk = fallbackMark(spans, sides)
	}
	out.Marked, out.Mark = pk.id, pk.mark()
	for i, sp := range ordered {
		if i >= MaxTraceSpans && sp.SpanID != out.Marked {
			out.Omitted++
			continue
		}
		out.Spans = append(out.Spans, analysis.TraceSpan{
			SpanID: sp.SpanID, ParentID: sp.ParentID, Service: sp.Service, Operation: names[sp.SpanID],
			Depth: depth[sp.SpanID], StartOffsetUs: micros(sp.StartNs - first), DurationUs: micros(sp.EndNs - sp.StartNs),
			Error: sp.Failed, Side: sideName(sides[sp.SpanID]),
		})
	}
	return out
}

// micros turns nanoseconds into whole microseconds, rounded, never
// negative.
func micros(ns int64) int64 { return max(ns+500, 0) / 1000 }

// mark is the Trace.Mark of the pick: MarkFailed, MarkSlowest, or "" for
// no pick.
func (p markPick) mark() string {
	switch {
	case p.id == "":
		return ""
	case p.failed:
		return analysis.MarkFailed
	}
	return analysis.MarkSlowest
}

// markPick is the span chosen so far to mark: the failed one if any
// failed, else the slowest, as sideStats picks a hop's example trace.
type markPick struct {
	id     string
	ns     int64
	failed bool
}

// offer considers span id, whose call took ns and failed or not.
func (p *markPick) offer(id string, ns int64, failed bool) {
	if p.id == "" || (failed && !p.failed) || (failed == p.failed && ns > p.ns) {
		*p = markPick{id: id, ns: ns, failed: failed}
	}
}

// hopMark picks among the calls on hop, each found and measured as
// traceCalls does (the caller's CLIENT span's duration, else the callee's
// span's; failed when either span failed), the span of the canary's end
// of the call: the callee's span when the canary was called, the
// caller's when it called.
func (m matcher) hopMark(spans []span, sides map[string]side, hop analysis.Edge) markPick {
	var pk markPick
	m.eachCall(spans, func(e analysis.Edge, parent, child, measured span) {
		if e != hop {
			return
		}
		mark := measured
		switch {
		case sides[child.SpanID] == sideCanary:
			mark = child
		case sides[parent.SpanID] == sideCanary:
			mark = parent
		}
		pk.offer(mark.SpanID, measured.EndNs-measured.StartNs, parent.Failed || child.Failed)
	})
	return pk
}

// fallbackMark picks the canary's failed or slowest span, or, when no span
// is the canary's, the trace's.
func fallbackMark(spans []span, sides map[string]side) markPick {
	var canary, any markPick
	for _, sp := range spans {
		any.offer(sp.SpanID, sp.EndNs-sp.StartNs, sp.Failed)
		if sides[sp.SpanID] == sideCanary {
			canary.offer(sp.SpanID, sp.EndNs-sp.StartNs, sp.Failed)
		}
	}
	return cmp.Or(canary, any)
}

// spanSides says which side of the analysed service emitted each span of
// one trace: a span of the service is the canary's or the stable's by its
// version (version mode), or by the host the mesh routed the call into it
// to, as sideByHost decides (host mode); a span of the service that says
// neither (its own CLIENT span of a call it makes) is its parent's side
// when the parent is the service's too; host mode's last resort is the
// span's service.name. Another service's span has no side.
func (m matcher) spanSides(spans []span) map[string]side {
	byID := make(map[string]span, len(spans))
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	out := make(map[string]side, len(spans))
	var sideOf func(sp span) side
	sideOf = func(sp span) side {
		if sd, done := out[sp.SpanID]; done {
			return sd
		}
		out[sp.SpanID] = sideNone // a cycle of parents ends here
		if !m.ours(sp) {
			return sideNone
		}
		parent, hasParent := byID[sp.ParentID]
		hasParent = hasParent && sp.ParentID != ""
		sd := sideNone
		switch {
		case !m.byHost && sp.Version == m.canary:
			sd = sideCanary
		case !m.byHost && sp.Version == m.stable:
			sd = sideStable
		case m.byHost && hasParent && parent.Kind == kindClient:
			sd = m.hostSide(parent.CalledHost)
		}
		if sd == sideNone && m.byHost && sp.Kind == kindServer {
			sd = m.hostSide(sp.CalledHost)
		}
		if sd == sideNone && hasParent && m.ours(parent) {
			sd = sideOf(parent)
		}
		if sd == sideNone && m.byHost {
			sd = m.nameSide(sp.Service)
		}
		out[sp.SpanID] = sd
		return sd
	}
	for _, sp := range spans {
		sideOf(sp)
	}
	return out
}

// treeOrder returns the spans with each after its parent and siblings by
// start time (roots, and spans whose parent is missing, by start time
// too), and each span's depth.
func treeOrder(spans []span) ([]span, map[string]int) {
	byID := make(map[string]bool, len(spans))
	for _, sp := range spans {
		byID[sp.SpanID] = true
	}
	children := map[string][]span{}
	var roots []span
	for _, sp := range spans {
		if sp.ParentID == "" || !byID[sp.ParentID] || sp.ParentID == sp.SpanID {
			roots = append(roots, sp)
		} else {
			children[sp.ParentID] = append(children[sp.ParentID], sp)
		}
	}
	byStart := func(a, b span) int {
		return cmp.Or(cmp.Compare(a.StartNs, b.StartNs), strings.Compare(a.SpanID, b.SpanID))
	}
	slices.SortFunc(roots, byStart)
	for _, c := range children {
		slices.SortFunc(c, byStart)
	}
	out := make([]span, 0, len(spans))
	depth := make(map[string]int, len(spans))
	var visit func(sp span, d int)
	visit = func(sp span, d int) {
		if _, seen := depth[sp.SpanID]; seen {
			return
		}
		depth[sp.SpanID] = d
		out = append(out, sp)
		for _, c := range children[sp.SpanID] {
			visit(c, d+1)
		}
	}
	for _, r := range roots {
		visit(r, 0)
	}
	// Spans in a cycle of parents are reachable from no root: they come
	// last, as roots.
	rest := slices.DeleteFunc(slices.Clone(spans), func(sp span) bool { _, seen := depth[sp.SpanID]; return seen })
	slices.SortFunc(rest, byStart)
	for _, sp := range rest {
		visit(sp, 0)
	}
	return out, depth
}
