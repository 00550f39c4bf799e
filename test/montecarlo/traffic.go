package montecarlo

import (
	"math"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// Scenario is one cell of the simulation: the service's traffic, each
// version's behaviour and the rollout's pace.
type Scenario struct {
	// RPS is the service's inbound requests per second, split between the
	// versions by the route's canary weight.
	RPS float64
	// Errors is the baseline share of 5xx of both versions' inbound
	// requests, and HopErrors that of their calls to each hop.
	Errors, HopErrors float64
	// MedianMs and Sigma shape both versions' log-normal latency.
	MedianMs float64
	Sigma    float64
	// The canary's injected effect: ExtraErrors more 5xx (a share, 0.01 is
	// one percentage point), ExtraMs more latency, and PaymentsCalls
	// calls to payments per inbound request (0 means 1, as stable).
	ExtraErrors   float64
	ExtraMs       float64
	PaymentsCalls int
	// EffectFrom is when the canary's effect begins, since the rollout's
	// start; zero means from the start.
	EffectFrom time.Duration
	// Scrape is Prometheus's scrape interval.
	Scrape time.Duration
	// StepInterval is the rollout's dwell per step.
	StepInterval time.Duration
}

// The downstream hops: each inbound request of checkout makes one call to
// each, with its own error rate (Scenario.HopErrors) and latency.
var hops = [...]struct {
	name     string
	medianMs float64
}{{"payments", 10}, {"inventory", 5}}

// The series scopes: checkout's inbound requests, then its calls to each
// hop.
const (
	scopeInbound = iota
	scopePayments
	scopeInventory
	numScopes
)

// The two sides and the two response codes.
const (
	canary, stable   = 0, 1
	code200, code5xx = 0, 1
)

// numBins is the number of histogram buckets, +Inf included.
var numBins = len(analysis.IstioBuckets) + 1

// series is one Istio counter series (one scope, side and response code)
// with its latency histogram: Envoy creates it with its first request,
// and not before.
type series struct {
	exists bool
	count  float64
	bins   []float64 // per bucket, not cumulative; the last is above every bound
}

// mesh holds the cumulative counters that the sidecars export.
type mesh struct {
	s [numScopes][2][2]series
}

func newMesh() *mesh {
	m := &mesh{}
	for sc := range m.s {
		for side := range m.s[sc] {
			for code := range m.s[sc][side] {
				m.s[sc][side][code].bins = make([]float64, numBins)
			}
		}
	}
	return m
}

// latencyBins are the probabilities of a log-normal latency (median ms,
// shape sigma) shifted by shift ms falling in each of Istio's buckets.
func latencyBins(median, sigma, shift float64) []float64 {
	cdf := func(ms float64) float64 {
		if ms <= shift {
			return 0
		}
		return 0.5 * math.Erfc(-(math.Log(ms-shift)-math.Log(median))/(sigma*math.Sqrt2))
	}
	out := make([]float64, numBins)
	prev := 0.0
	for i, ub := range analysis.IstioBuckets {
		c := cdf(ub)
		out[i] = c - prev
		prev = c
	}
	out[numBins-1] = 1 - prev
	return out
}

// behaviour is one version's traffic model at one moment.
type behaviour struct {
	errors, hopErrors float64
	bins              []float64
	paymentsCalls     float64
	hopBins           [len(hops)][]float64
}

// behaviours are both versions' models, before and after the canary's
// effect begins.
type behaviours struct {
	stable, canaryBefore, canaryAfter behaviour
}

func newBehaviours(sc Scenario) behaviours {
	base := behaviour{errors: sc.Errors, hopErrors: sc.HopErrors, bins: latencyBins(sc.MedianMs, sc.Sigma, 0), paymentsCalls: 1}
	for i, h := range hops {
		base.hopBins[i] = latencyBins(h.medianMs, sc.Sigma, 0)
	}
	after := base
	after.errors = math.Min(1, sc.Errors+sc.ExtraErrors)
	if sc.ExtraMs != 0 {
		after.bins = latencyBins(sc.MedianMs, sc.Sigma, sc.ExtraMs)
	}
	if sc.PaymentsCalls > 0 {
		after.paymentsCalls = float64(sc.PaymentsCalls)
	}
	return behaviours{stable: base, canaryBefore: base, canaryAfter: after}
}

// serve adds the traffic of d at a canary weight of weight percent: Poisson
// arrivals, split between the versions by the weight, each request failing
// with its version's error rate, its latency counted into the buckets,
// and its calls to the hops.
func (m *mesh) serve(g rng, rps float64, weight int32, d time.Duration, can, sta behaviour) {
	secs := d.Seconds()
	for side, b := range [2]behaviour{can, sta} {
		share := float64(weight) / 100
		if side == stable {
			share = 1 - share
		}
		lam := rps * share * secs
		if lam <= 0 {
			continue
		}
		// Poisson splitting: the failed and the good requests are two
		// independent Poisson processes.
		n := [2]float64{g.poisson(lam * (1 - b.errors)), g.poisson(lam * b.errors)}
		for code, k := range n {
			m.add(g, scopeInbound, side, code, k, b.bins)
		}
		total := n[0] + n[1]
		for i := range hops {
			calls := total
			if i == scopePayments-1 {
				calls *= b.paymentsCalls
			}
			bad := g.binomial(calls, b.hopErrors)
			m.add(g, scopePayments+i, side, code200, calls-bad, b.hopBins[i])
			m.add(g, scopePayments+i, side, code5xx, bad, b.hopBins[i])
		}
	}
}

// add counts k requests of one series, their latencies drawn from bins.
func (m *mesh) add(g rng, scope, side, code int, k float64, bins []float64) {
	if k <= 0 {
		return
	}
	s := &m.s[scope][side][code]
	s.exists = true
	s.count += k
	g.multinomial(k, bins, s.bins)
}
