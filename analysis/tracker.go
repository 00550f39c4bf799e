package analysis

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/serin-dev/serin/analysis/sequential"
)

// The family of sequential tests and how α is shared among them. The whole
// rollout's probability of a false rollback is at most α by Bonferroni's
// inequality over the acting tests: P(any test ever crosses) ≤ Σ α_k ≤ α,
// and each test's own crossing probability is at most its α_k whenever it
// is checked (Ville's inequality). The shares are fixed before any data is
// seen, so a hop found later cannot inflate them:
//   - half of α for the canary's inbound traffic, shared by its four tests
//     (errors and latency against stable, errors and latency against the
//     absolute limits);
//   - a quarter for the downstream hops in metrics, in MaxHops slots of
//     three tests (errors, latency, calls per request); a hop beyond the
//     slots is reported and not judged;
//   - a quarter for the edges in traces, in MaxHops slots of two tests.
//
// The stable side's SLO tests decide only whether stable itself is above
// an absolute limit, which never rolls a canary back, so they take the same
// α_k as the canary's without adding to the family.
const (
	// MaxHops is the number of downstream hops (and trace edges) judged.
	MaxHops       = 16
	inboundTests  = 4
	hopTests      = 3
	traceTests    = 2
	inboundShare  = 0.5
	hopsShare     = 0.25
	tracesShare   = 0.25
	maxLatencyLEs = 24
)

// slowShare is the share of requests a p99 at its limit lets be slower
// than the limit.
const slowShare = 0.01

// Tracker holds one rollout's sequential tests between ticks. It is fed
// cumulative counters (see MetricSource) at each tick and differences them
// itself: the tests see per-scrape increments, never a window's
// extrapolation, and nothing from before the first reading, which the
// runner takes at the rollout's analysis start. It is pure: no clock, no
// I/O. It is not safe for concurrent use.
type Tracker struct {
	start time.Time
	cfg   Config

	in        *pairTests
	inReading *Pair
	inAt      time.Time // Pair.At of inReading
	hopAt     time.Time // Pair.At of the latest hop reading
	hops      map[string]*hopState
	hopOrder  []string // hops in the order first seen, for their α slots
	hopsRead  bool     // whether a hop reading has been taken as baseline
	hopLast   map[string]Pair
	// inSinceHops is the inbound traffic since the latest hop reading,
	// which calls per request are measured against.
	inSinceHops Pair
	edges       map[Edge]*pairTests
	edgeOrder   []Edge
	traceIDs    map[Edge]string
}

// hopState is one downstream hop's tests.
type hopState struct {
	pairTests
	calls sequential.OddsTest
	// inbound is the inbound traffic over the same intervals as the calls,
	// so that calls per request compare like with like.
	inbound Pair
}

// pairTests are the sequential tests on one pair of canary and stable
// traffic, and their cumulative counts since the start.
type pairTests struct {
	cum      Pair
	errSplit sequential.OddsTest
	latSplit map[float64]*sequential.OddsTest
	// SLO tests of each side: errors above the error limit, requests
	// slower than the latency limit.
	errSLO, latSLO       [2]sequential.OddsTest
	errAt, latAt, callAt time.Duration // when evidence first crossed; -1 until then
	errSLOAt, latSLOAt   time.Duration
	// lastAt is when the latest interval ended, since the start.
	lastAt time.Duration
}

// NewTracker returns a Tracker whose tests start at start with cfg's
// limits and α.
func NewTracker(cfg Config, start time.Time) *Tracker {
	return &Tracker{start: start, cfg: cfg, hops: map[string]*hopState{}, hopLast: map[string]Pair{},
		edges: map[Edge]*pairTests{}, traceIDs: map[Edge]string{}}
}

// Start is when the tracker's tests began.
func (t *Tracker) Start() time.Time { return t.start }

func newPairTests() *pairTests {
	return &pairTests{latSplit: map[float64]*sequential.OddsTest{}, errAt: -1, latAt: -1, callAt: -1, errSLOAt: -1, latSLOAt: -1}
}

// ObserveInbound feeds the cumulative inbound counters read at now. The
// first reading is the baseline and judges nothing.
func (t *Tracker) ObserveInbound(now time.Time, p Pair) {
	if t.inReading != nil && !p.At.IsZero() && !p.At.After(t.inAt) {
		return // an answer no newer than the last: nothing new in it
	}
	t.inAt = p.At
	if t.inReading == nil {
		t.in = newPairTests()
		t.inReading = &p
		return
	}
	dc, ds := increase(p.Canary, t.inReading.Canary), increase(p.Stable, t.inReading.Stable)
	*t.inReading = p
	t.in.update(dc, ds, t.cfg.ErrorRate, t.cfg.Latency, now.Sub(t.start), t.alphaInbound())
	t.inSinceHops.Canary.Requests += dc.Requests
	t.inSinceHops.Stable.Requests += ds.Requests
}

// Suspect reports whether the inbound counters p, newer than the latest
// reading observed, would take the canary's error tests more than half-way
// to rejection (in log scale: past √(1/α), the bar of rollout.Urgent). It
// changes nothing: the rollout's own tick observes p and judges. It is a
// screen, to be run between ticks on counters a source already holds, so
// that a canary that began to fail is ticked at once rather than in its
// turn; a tick more or less leaves the tests' error bounds as they are.
func (t *Tracker) Suspect(p Pair) bool {
	l := t.cfg.ErrorRate
	if t.inReading == nil || t.in == nil || l.Disabled || l.DryRun || !p.At.After(t.inAt) {
		return false
	}
	dc, ds := increase(p.Canary, t.inReading.Canary), increase(p.Stable, t.inReading.Stable)
	if dc.Errors <= 0 {
		return false
	}
	bar := math.Sqrt(1 / t.alphaInbound())
	split := t.in.errSplit // a copy: OddsTest is a value
	split.Update(dc.Errors, dc.Errors+ds.Errors, share(dc.Requests, ds.Requests))
	if split.Evidence() >= bar {
		return true
	}
	if l.Max > 0 {
		slo := t.in.errSLO[0]
		slo.Update(dc.Errors, dc.Requests, l.Max)
		return slo.Evidence() >= bar
	}
	return false
}

// ObserveHops feeds the cumulative hop counters read at now, keyed by the
// called service. Call it after ObserveInbound for the same reading, so
// that calls per request use the same interval's inbound traffic. A hop
// that first appears after the baseline counts from zero: its series did
// not exist before.
func (t *Tracker) ObserveHops(now time.Time, hops map[string]Pair) {
	var at time.Time // one reading: every pair has the same At
	for _, p := range hops {
		at = p.At
		break
	}
	if t.hopsRead && !at.IsZero() && !at.After(t.hopAt) {
		return // an answer no newer than the last; inbound keeps adding up
	}
	t.hopAt = at
	in := t.inSinceHops
	t.inSinceHops = Pair{}
	if !t.hopsRead {
		t.hopsRead = true
		t.hopLast = map[string]Pair{}
		maps.Copy(t.hopLast, hops)
		return
	}
	rho := share(in.Canary.Requests, in.Stable.Requests)
	for _, called := range slices.Sorted(maps.Keys(hops)) {
		p := hops[called]
		h := t.hops[called]
		if h == nil {
			h = &hopState{pairTests: *newPairTests()}
			t.hops[called] = h
			t.hopOrder = append(t.hopOrder, called)
		}
		last := t.hopLast[called] // zero when the hop is new: counts from zero
		t.hopLast[called] = p
		if slices.Index(t.hopOrder, called) >= MaxHops {
			continue
		}
		dc, ds := increase(p.Canary, last.Canary), increase(p.Stable, last.Stable)
		at := now.Sub(t.start)
		h.update(dc, ds, Limit{Disabled: true}, Limit{Disabled: true}, at, t.alphaHop())
		// Calls per request: of the calls to this hop, the canary's share
		// against its share of the inbound requests over the same
		// readings. Calls lag their requests by a little; over the run the
		// lag evens out.
		h.inbound.Canary.Requests += in.Canary.Requests
		h.inbound.Stable.Requests += in.Stable.Requests
		h.calls.Update(dc.Requests, dc.Requests+ds.Requests, rho)
		if h.callAt < 0 && h.calls.Evidence() >= 1/t.alphaHop() {
			h.callAt = at
		}
	}
}

// ObserveTraces feeds the calls seen in traces since the previous call,
// per edge; the example trace IDs are kept for messages.
func (t *Tracker) ObserveTraces(now time.Time, edges map[Edge]EdgePair) {
	for _, e := range slices.SortedFunc(maps.Keys(edges), compareEdges) {
		ep := edges[e]
		pt := t.edges[e]
		if pt == nil {
			pt = newPairTests()
			t.edges[e] = pt
			t.edgeOrder = append(t.edgeOrder, e)
		}
		if ep.CanaryTraceID != "" {
			t.traceIDs[e] = ep.CanaryTraceID
		}
		if slices.Index(t.edgeOrder, e) >= MaxHops {
			continue
		}
		pt.update(callStats(ep.CanaryCalls), callStats(ep.StableCalls), Limit{Disabled: true}, Limit{Disabled: true},
			now.Sub(t.start), t.alphaTrace())
	}
}

func compareEdges(a, b Edge) int {
	return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
}

// The α of one test in each group.
func (t *Tracker) alphaInbound() float64 { return t.cfg.Alpha * inboundShare / inboundTests }
func (t *Tracker) alphaHop() float64     { return t.cfg.Alpha * hopsShare / (MaxHops * hopTests) }
func (t *Tracker) alphaTrace() float64   { return t.cfg.Alpha * tracesShare / (MaxHops * traceTests) }

// update adds one interval's increments of each side to the tests. SLO
// tests run only for limits that are not disabled and have a Max.
func (pt *pairTests) update(dc, ds Stats, errLimit, latLimit Limit, at time.Duration, alpha float64) {
	pt.cum.Canary = add(pt.cum.Canary, dc)
	pt.cum.Stable = add(pt.cum.Stable, ds)
	rho := share(dc.Requests, ds.Requests)
	pt.errSplit.Update(dc.Errors, dc.Errors+ds.Errors, rho)
	// Latency is judged within the histogram alone: its own total, never
	// the request counter, which comes from another series (and another
	// query) and may be a scrape apart.
	hc, hs := dc.histTotal(), ds.histTotal()
	rhoLat := share(hc, hs)
	for _, b := range dc.Buckets {
		if math.IsInf(b.UpperMs, 1) {
			continue
		}
		ot := pt.latSplit[b.UpperMs]
		if ot == nil {
			if len(pt.latSplit) >= maxLatencyLEs {
				continue
			}
			ot = &sequential.OddsTest{}
			pt.latSplit[b.UpperMs] = ot
		}
		slowC, slowS := hc-b.Count, hs-ds.atMost(b.UpperMs)
		ot.Update(slowC, slowC+slowS, rhoLat)
	}
	for i, s := range []Stats{dc, ds} {
		if !errLimit.Disabled && errLimit.Max > 0 {
			pt.errSLO[i].Update(s.Errors, s.Requests, errLimit.Max)
		}
		if !latLimit.Disabled && latLimit.Max > 0 {
			if b, ok := boundAtLeast(s.Buckets, latLimit.Max); ok {
				pt.latSLO[i].Update(s.histTotal()-b.Count, s.histTotal(), slowShare)
			}
		}
	}
	crossed := func(at0 *time.Duration, e float64) {
		if *at0 < 0 && e >= 1/alpha {
			*at0 = at
		}
	}
	crossed(&pt.errAt, pt.errSplit.Evidence())
	crossed(&pt.latAt, pt.latencyEvidence())
	crossed(&pt.errSLOAt, pt.errSLO[0].Evidence())
	crossed(&pt.latSLOAt, pt.latSLO[0].Evidence())
	pt.lastAt = at
}

// latencyEvidence averages the e-values of the tests at every histogram
// bound, with the bounds not yet seen counting as 1 (see sequential.Mean).
func (pt *pairTests) latencyEvidence() float64 {
	es := make([]float64, 0, maxLatencyLEs)
	for _, ot := range pt.latSplit {
		es = append(es, ot.Evidence())
	}
	for len(es) < maxLatencyLEs {
		es = append(es, 1)
	}
	return sequential.Mean(es...)
}

// share is the canary's share of two counts, or NaN without either.
func share(c, s float64) float64 {
	if c+s <= 0 {
		return math.NaN()
	}
	return c / (c + s)
}

// increase is cur − last for every counter. A counter that went down was
// reset (a restarted pod): that interval counts nothing for the side, and
// the next one counts from the new value.
func increase(cur, last Stats) Stats {
	d := Stats{Requests: cur.Requests - last.Requests, Errors: cur.Errors - last.Errors}
	if d.Requests < 0 || d.Errors < 0 {
		return Stats{}
	}
	for _, b := range cur.Buckets {
		c := b.Count - last.atMost(b.UpperMs)
		if c < 0 {
			return Stats{Requests: d.Requests, Errors: d.Errors}
		}
		d.Buckets = append(d.Buckets, Bucket{UpperMs: b.UpperMs, Count: c})
	}
	return d
}

// add sums two sides' counts, bucket by bucket.
func add(a, b Stats) Stats {
	out := Stats{Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors}
	bounds := map[float64]bool{}
	for _, x := range a.Buckets {
		bounds[x.UpperMs] = true
	}
	for _, x := range b.Buckets {
		bounds[x.UpperMs] = true
	}
	for _, ub := range slices.Sorted(maps.Keys(bounds)) {
		out.Buckets = append(out.Buckets, Bucket{UpperMs: ub, Count: a.atMost(ub) + b.atMost(ub)})
	}
	return out
}

// histTotal is the number of requests in the latency histogram: its +Inf
// bucket, or Requests when the buckets carry no +Inf (calls from traces,
// counted from the same calls).
func (s Stats) histTotal() float64 {
	if n := len(s.Buckets); n > 0 && math.IsInf(s.Buckets[n-1].UpperMs, 1) {
		return s.Buckets[n-1].Count
	}
	return s.Requests
}

// atMost is the cumulative count of the bucket with bound ub, or of the
// nearest bound below it (0 below every bound).
func (s Stats) atMost(ub float64) float64 {
	c := 0.0
	for _, b := range s.Buckets {
		if b.UpperMs > ub {
			break
		}
		c = b.Count
	}
	return c
}

// boundAtLeast is the bucket with the smallest bound at or above ms: the
// requests above it are certainly slower than ms.
func boundAtLeast(bs []Bucket, ms float64) (Bucket, bool) {
	for _, b := range bs {
		if b.UpperMs >= ms && !math.IsInf(b.UpperMs, 1) {
			return b, true
		}
	}
	return Bucket{}, false
}

// callStats turns calls seen in traces into counts in Istio's default
// latency buckets, so that trace edges are judged like metric hops.
func callStats(calls []Call) Stats {
	s := Stats{Requests: float64(len(calls))}
	for _, ub := range IstioBuckets {
		s.Buckets = append(s.Buckets, Bucket{UpperMs: ub})
	}
	for _, c := range calls {
		if c.Failed {
			s.Errors++
		}
		for i, ub := range IstioBuckets {
			if c.Ms <= ub {
				s.Buckets[i].Count++
			}
		}
	}
	return s
}

// IstioBuckets are the bounds, in ms, of Istio's default
// istio_request_duration_milliseconds histogram.
var IstioBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Measurements returns the tests' state as measurements to judge, in a
// stable order: inbound, then hops, then trace edges.
func (t *Tracker) Measurements(service string) []Measurement {
	cfg := t.cfg
	var ms []Measurement
	if t.in == nil {
		return nil
	}
	a := t.alphaInbound()
	in := t.in
	if !cfg.ErrorRate.Disabled {
		ms = append(ms,
			measure(KindErrorRate, "", "prometheus", in, cfg.ErrorRate, a, in.errSplit.Evidence(), in.errAt),
			sloMeasure(KindErrorSLO, in, cfg.ErrorRate, a, in.errSLO, in.errSLOAt))
	}
	if !cfg.Latency.Disabled {
		ms = append(ms,
			measure(KindLatency, "", "prometheus", in, cfg.Latency, a, in.latencyEvidence(), in.latAt),
			sloMeasure(KindLatencySLO, in, cfg.Latency, a, in.latSLO, in.latSLOAt))
	}
	if cfg.Hops {
		for i, called := range t.hopOrder {
			hop := service + " → " + called
			h := t.hops[called]
			if i >= MaxHops {
				ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Hop: hop, Source: "prometheus",
					Err: fmt.Errorf("more than %d downstream services: %w", MaxHops, ErrNotJudged)})
				continue
			}
			ah := t.alphaHop()
			if !cfg.HopErrorRate.Disabled {
				ms = append(ms, measure(KindErrorRate, hop, "prometheus", &h.pairTests, cfg.HopErrorRate, ah, h.errSplit.Evidence(), h.errAt))
			}
			if !cfg.HopLatency.Disabled {
				ms = append(ms, measure(KindLatency, hop, "prometheus", &h.pairTests, cfg.HopLatency, ah, h.latencyEvidence(), h.latAt))
			}
			if !cfg.CallRate.Disabled {
				m := measure(KindCallRate, hop, "prometheus", &h.pairTests, cfg.CallRate, ah, h.calls.Evidence(), h.callAt)
				m.Inbound = h.inbound
				ms = append(ms, m)
			}
		}
	}
	if cfg.Traces {
		for i, e := range t.edgeOrder {
			pt := t.edges[e]
			hop := e.From + " → " + e.To
			if i >= MaxHops {
				continue
			}
			at := t.alphaTrace()
			el, ll := traceLimit(cfg.HopErrorRate, cfg), traceLimit(cfg.HopLatency, cfg)
			for _, m := range []Measurement{
				measure(KindErrorRate, hop, "jaeger", pt, el, at, pt.errSplit.Evidence(), pt.errAt),
				measure(KindLatency, hop, "jaeger", pt, ll, at, pt.latencyEvidence(), pt.latAt),
			} {
				if !m.Limit.Disabled {
					m.TraceID = t.traceIDs[e]
					ms = append(ms, m)
				}
			}
		}
	}
	return ms
}

// measure is the measurement of a comparison of canary with stable.
func measure(k Kind, hop, source string, pt *pairTests, l Limit, alpha, evidence float64, at time.Duration) Measurement {
	return Measurement{Check: string(k), Kind: k, Hop: hop, Source: source, Pair: pt.cum, Limit: l,
		Alpha: alpha, Evidence: evidence, EvidenceAt: at, Elapsed: pt.lastAt}
}

// sloMeasure is the measurement of the canary against an absolute limit,
// with the stable side's evidence against the same limit.
func sloMeasure(k Kind, pt *pairTests, l Limit, alpha float64, tests [2]sequential.OddsTest, at time.Duration) Measurement {
	m := measure(k, "", "prometheus", pt, l, alpha, tests[0].Evidence(), at)
	m.StableEvidence = tests[1].Evidence()
	return m
}
