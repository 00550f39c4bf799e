package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TraceReader fetches one trace from the tracing backend, for the
// console's span waterfall. cmd wires analysis/jaeger's Source in.
type TraceReader interface {
	// Trace fetches trace id and lays it out for target t: each span's
	// offset and duration, whether it failed, and which side of t emitted
	// it, decided as the analysis decides; it marks the canary's span of
	// the failed, else the slowest, call on hop (or anywhere, for a zero
	// hop). It wraps analysis.ErrNoData when the backend does not have the
	// trace, and analysis.ErrUnavailable when it cannot be asked.
	Trace(ctx context.Context, t analysis.Target, hop analysis.Edge, id string) (analysis.Trace, error)
}

// TraceView is the JSON shape of GET .../traces/{traceID}: one example
// trace of a rollout's check, laid out for a waterfall.
type TraceView struct {
	TraceID string `json:"traceID"`
	// Hop is the hop of the check whose example the trace is, as the
	// checks name it, "checkout → payments"; "inbound" for the canary's
	// own traffic.
	Hop string `json:"hop"`
	// Check is that check's name, e.g. latency-p99.
	Check string `json:"check"`
	// Side is which version the trace went through, as the analysis
	// counted it: canary, stable, or "" for neither or both.
	Side string `json:"side"`
	// DurationUs is from the first span's start to the last span's end.
	DurationUs int64 `json:"durationUs"`
	// Marked is the spanID of the span to look at first, "" for none;
	// Mark says why: "failed" (the canary's failed call on the hop) or
	// "slowest" (its slowest call there).
	Marked string `json:"marked"`
	Mark   string `json:"mark"`
	// Spans are the spans in tree order, each after its parent, siblings
	// by start; Omitted counts those left out of a very large trace.
	Spans   []SpanView `json:"spans"`
	Omitted int        `json:"omitted"`
}

// SpanView is one span of a TraceView.
type SpanView struct {
	SpanID string `json:"spanID"`
	// ParentID is "" for a root span, or one whose parent is not in the
	// trace.
	ParentID  string `json:"parentID"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
	// Depth is how many of the span's ancestors are in the trace.
	Depth int `json:"depth"`
	// StartOffsetUs is when the span started, in microseconds from the
	// trace's start; DurationUs is how long it took.
	StartOffsetUs int64 `json:"startOffsetUs"`
	DurationUs    int64 `json:"durationUs"`
	// Error is true for a failed span: status ERROR (Envoy's error=true)
	// or an HTTP status code of 500 or more.
	Error bool `json:"error"`
	// Version is which version of the rollout's service emitted the span:
	// canary, stable, or "" for another service's span.
	Version string `json:"version"`
}

// getTrace handles GET /api/v1/rollouts/{ns}/{name}/traces/{traceID}. It
// answers only for a trace the rollout's status names as a check's
// example, so that a reader of one rollout cannot read any other trace
// through it.
func (s *server) getTrace(c *gin.Context) {
	ns, name, id := c.Param("ns"), c.Param("name"), strings.ToLower(c.Param("traceID"))
	if !s.authorize(c, Action{Verb: "get", Namespace: ns, Name: name}) || !s.synced(c) {
		return
	}
	r, ok := s.Store.Get(ns, name)
	if !ok {
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "rollout %s/%s not found", ns, name))
		return
	}
	check, ok := exampleOf(r, id)
	if !ok {
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "trace %s is not an example trace of rollout %s/%s", id, ns, name))
		return
	}
	if s.Traces == nil {
		abort(c, s.Log, errorf(http.StatusNotImplemented, nil, "this server was started without a trace source (--jaeger-url), so it cannot show traces"))
		return
	}
	tr, err := s.Traces.Trace(c.Request.Context(), rollout.AnalysisTarget(r), hopEdge(check.Hop), id)
	switch {
	case errors.Is(err, analysis.ErrNoData):
		abort(c, s.Log, errorf(http.StatusNotFound, nil, "trace %s is no longer in the trace store", id))
		return
	case errors.Is(err, analysis.ErrUnavailable):
		s.Log.Warn("trace source unavailable", "namespace", ns, "name", name, "trace", id, "err", err)
		abort(c, s.Log, errorf(http.StatusBadGateway, nil, "the trace source could not be asked for trace %s; retry", id))
		return
	case err != nil:
		s.internal(c, "read trace", err)
		return
	}
	c.JSON(http.StatusOK, traceView(tr, check))
}

// exampleOf returns the check of r whose example trace is id, preferring
// a failing one (the trace then shows why it failed).
func exampleOf(r *v1alpha1.Rollout, id string) (v1alpha1.CheckStatus, bool) {
	var found *v1alpha1.CheckStatus
	for i, ch := range r.Status.Analysis.Checks {
		if id == "" || !strings.EqualFold(ch.TraceID, id) {
			continue
		}
		if found == nil || (ch.Verdict == string(analysis.Fail) && found.Verdict != string(analysis.Fail)) {
			found = &r.Status.Analysis.Checks[i]
		}
	}
	if found == nil {
		return v1alpha1.CheckStatus{}, false
	}
	return *found, true
}

// hopEdge reads a check's hop, "checkout → payments" as analysis writes
// an Edge; an inbound check's empty hop is the zero Edge.
func hopEdge(hop string) analysis.Edge {
	from, to, ok := strings.Cut(hop, " → ")
	if !ok {
		return analysis.Edge{}
	}
	return analysis.Edge{From: from, To: to}
}

func traceView(tr analysis.Trace, check v1alpha1.CheckStatus) TraceView {
	v := TraceView{
		TraceID: tr.TraceID, Hop: check.Hop, Check: check.Check, Side: tr.Side, DurationUs: tr.DurationUs,
		Marked: tr.Marked, Mark: tr.Mark, Spans: make([]SpanView, 0, len(tr.Spans)), Omitted: tr.Omitted,
	}
	if v.Hop == "" {
		v.Hop = "inbound"
	}
	for _, sp := range tr.Spans {
		v.Spans = append(v.Spans, SpanView{
			SpanID: sp.SpanID, ParentID: sp.ParentID, Service: sp.Service, Operation: sp.Operation, Depth: sp.Depth,
			StartOffsetUs: sp.StartOffsetUs, DurationUs: sp.DurationUs, Error: sp.Error, Version: sp.Side,
		})
	}
	return v
}
