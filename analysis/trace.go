package analysis

// Trace is one trace laid out for a person to read: its spans in tree
// order (each after its parent, siblings by start), when each started
// and how long it took, and the one span worth looking at first. A
// TraceSource that can fetch a trace by ID returns it; the API serves it
// to the console's waterfall.
type Trace struct {
	// TraceID is the trace's ID in lowercase hex.
	TraceID string
	// DurationUs is from the first span's start to the last span's end,
	// in microseconds.
	DurationUs int64
	// Side is which version of the analysed service the trace went
	// through, as the analysis counts it: SideCanary, SideStable or ""
	// for neither or both (a trace the analysis skips).
	Side string
	// Spans are the trace's spans in tree order, at most a source's
	// bound; Omitted counts those left out.
	Spans   []TraceSpan
	Omitted int
	// Marked is the span ID of the span to look at first: on the hop
	// asked about, the canary's span of its failed call if one failed
	// (Mark is MarkFailed), else of its slowest call (MarkSlowest), as
	// the analysis picks a hop's example trace. "" when the trace has no
	// span to mark.
	Marked string
	Mark   string
}

// Sides and marks of a Trace.
const (
	SideCanary  = "canary"
	SideStable  = "stable"
	MarkFailed  = "failed"
	MarkSlowest = "slowest"
)

// TraceSpan is one span of a Trace.
type TraceSpan struct {
	SpanID string
	// ParentID is "" for a root span, or a span whose parent is not in
	// the trace.
	ParentID  string
	Service   string
	Operation string
	// Depth is how many ancestors of the span are in the trace.
	Depth int
	// StartOffsetUs is when the span started, in microseconds from the
	// trace's first span; DurationUs how long it took.
	StartOffsetUs int64
	DurationUs    int64
	// Error is true for a span whose status is ERROR or whose HTTP status
	// code is 5xx, as the analysis counts a failed call.
	Error bool
	// Side is which version of the analysed service emitted the span:
	// SideCanary, SideStable, or "" for another service's span.
	Side string
}
