package analysis

import (
	"context"
	"errors"
	"math"
	"time"
)

// ErrUnavailable means a data source could not be asked: a connection
// refused, a timeout, a server error or an answer that does not parse. Like
// ErrNoData it leads to Inconclusive, never to Pass; the reason says the
// data source is unavailable.
var ErrUnavailable = errors.New("data source unavailable")

// Stats is what a provider measured for one side (canary or stable) over a
// window.
type Stats struct {
	// Requests is the number of requests in the window: the sample size.
	Requests float64
	// Errors is the number of those that failed (5xx, or an error span).
	Errors float64
	// P99Ms is the 99th percentile latency in milliseconds; NaN when it
	// cannot be computed.
	P99Ms float64
	// The latency distribution behind P99Ms, when the source has it:
	// Buckets from a histogram (cumulative counts by upper bound, in ms,
	// sorted by bound), or Latencies, the exact durations in ms. The judge
	// uses them to tell a real slowdown from a few slow requests.
	Buckets   []Bucket
	Latencies []float64
}

// Bucket is one cumulative histogram bucket: Count requests took at most
// UpperMs milliseconds.
type Bucket struct {
	UpperMs float64
	Count   float64
}

// Above estimates how many requests took longer than ms: exactly from
// Latencies, or from Buckets by linear interpolation inside the bucket
// that holds ms, as histogram_quantile does. It is NaN without either.
func (s Stats) Above(ms float64) float64 {
	if len(s.Latencies) > 0 {
		n := 0
		for _, l := range s.Latencies {
			if l > ms {
				n++
			}
		}
		return float64(n)
	}
	if len(s.Buckets) == 0 {
		return math.NaN()
	}
	total := s.Buckets[len(s.Buckets)-1].Count
	prevUpper, prevCount := 0.0, 0.0
	for _, b := range s.Buckets {
		if ms <= b.UpperMs {
			if math.IsInf(b.UpperMs, 1) {
				return total - prevCount
			}
			frac := (ms - prevUpper) / (b.UpperMs - prevUpper)
			return total - (prevCount + frac*(b.Count-prevCount))
		}
		prevUpper, prevCount = b.UpperMs, b.Count
	}
	return 0
}

// ErrorRate is Errors/Requests, or NaN without requests.
func (s Stats) ErrorRate() float64 {
	if s.Requests <= 0 {
		return math.NaN()
	}
	return s.Errors / s.Requests
}

// Side says how one version of the analysed service is recognised in
// metrics and traces.
type Side struct {
	// Version is the version label of the subset (subset mode), e.g. "v2":
	// destination_version / source_version in Istio's metrics, and
	// service.version in traces.
	Version string
	// Host is the service host. In subset mode both sides share it
	// (destination_service); in host mode each side has its own and it is
	// matched on destination_service_name.
	Host string
	// Match, when set, replaces the default matchers with explicit
	// destination-side label matchers, e.g. {"destination_workload":
	// "checkout-v2"}, for meshes labelled differently.
	Match map[string]string
}

// Target is the service whose canary is analysed.
type Target struct {
	Namespace string
	// Service is the short service name, e.g. "checkout": the
	// canonical service in metrics and service.name in traces.
	Service string
	// HostMode is true when the sides are told apart by host instead of by
	// version label.
	HostMode bool
	Canary   Side
	Stable   Side
}

// Pair is canary and stable measured the same way.
type Pair struct {
	Canary Stats
	Stable Stats
	// At is when the counters were read: the evaluation time of the answer
	// they come from, zero when the source cannot tell. A source may
	// answer a reading of the present with an answer a few seconds old
	// rather than keep a tick waiting; a Tracker skips a reading no newer
	// than the last one it took, so that an old answer is never taken for
	// a counter reset.
	At time.Time
}

// MetricSource reads traffic counters from metrics (Prometheus).
// Implementations batch their queries: one query per kind serves every
// rollout in a tick.
//
// Both methods return cumulative counters as they stand at at: the raw sum
// of Istio's counters (requests, 5xx, histogram buckets), with no rate(),
// no increase() and so no extrapolation. The caller takes differences
// between two instants itself (see Tracker), so that a count is never
// stretched over a window it did not fill, and a series that first appears
// between two readings (Envoy creates a response_code="500" series only
// with its first error) counts from zero.
type MetricSource interface {
	// Inbound returns the cumulative requests, errors and latency buckets
	// each side of t has received, as of at. A reading of the recent past
	// may be answered as of a later instant, never an earlier one
	// (Pair.At says which): differences from it then leave a little
	// traffic out, and never count any from before at. It wraps ErrNoData
	// when there are no series for a side, and ErrUnavailable when the
	// source cannot be asked.
	Inbound(ctx context.Context, t Target, at time.Time) (Pair, error)
	// Hops returns the cumulative calls each side of t has made
	// downstream, as of at (or, like Inbound, a little later), keyed by
	// the called service's short name (e.g. "payments").
	Hops(ctx context.Context, t Target, at time.Time) (map[string]Pair, error)
	// Scalar runs a custom query and returns its single value. It wraps
	// ErrNoData for an empty result and ErrUnavailable for a failed query.
	Scalar(ctx context.Context, query string, at time.Time) (float64, error)
}

// HeldSource is a MetricSource that can tell, without asking its server,
// what the newest answer it holds says of t: Inbound's requests and
// errors (no latency buckets), with Pair.At. ok is false when it holds
// none for t. The Runner's Suspects reads it between ticks.
type HeldSource interface {
	HeldInbound(t Target) (p Pair, ok bool)
}

// Edge is a call from one service to another, as seen in traces.
type Edge struct {
	From string
	To   string
}

// EdgePair is an edge's statistics split by the version of the analysed
// service in the trace, with an example trace of the canary side.
type EdgePair struct {
	Pair
	// CanaryTraceID is the ID of a canary trace on this edge, preferably
	// its slowest or a failed one, to link from messages.
	CanaryTraceID string
	// CanaryCalls and StableCalls are the calls behind the statistics, so
	// that a caller can merge several fetches exactly.
	CanaryCalls []Call
	StableCalls []Call
}

// Call is one call on an edge, as seen in a trace.
type Call struct {
	Ms      float64
	Failed  bool
	TraceID string
}

// TraceSource measures per-edge statistics from traces (Jaeger).
type TraceSource interface {
	// Edges reads traces that pass through t.Service between since and
	// until (at most the source's configured number of traces) and returns
	// per calling → called edge the statistics of the traces in which
	// t.Service was the canary and of those in which it was stable. It wraps
	// ErrNoData when there are no traces and ErrUnavailable when the source
	// cannot be asked.
	Edges(ctx context.Context, t Target, since, until time.Time) (map[Edge]EdgePair, error)
}

// SteppedTraceSource is a TraceSource that answers on a grid: it counts
// the traces of [since, until] from since aligned down to a multiple of
// Step (so that callers share searches). A caller's first since must then
// be on the grid, or the answer would reach before it: the runner aligns
// a rollout's first trace search up to the next step after its start, so
// that a predecessor's traces are never its own.
type SteppedTraceSource interface {
	TraceSource
	// Step is the grid's step.
	Step() time.Duration
}
