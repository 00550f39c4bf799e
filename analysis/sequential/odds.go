// Package sequential holds serin's anytime-valid tests: statistics that may
// be looked at after every scrape, for as long as a rollout lasts, with the
// probability of ever raising a false alarm bounded by α.
//
// The anchor is Lindon, Sanden and Shirikian, "Rapid Regression Detection
// in Software Deployments through Sequential Testing" (KDD 2022): counts of
// events from canary and stable are compared through a test martingale (an
// e-process) E_t, and Ville's inequality, P(sup_t E_t ≥ 1/α) ≤ α under the
// null hypothesis, makes "reject as soon as E_t ≥ 1/α" a test at level α no
// matter how often, or for how long, E_t is checked. A test at a fixed
// level, repeated every tick, has no such bound.
//
// Every test here is one primitive, OddsTest: of the events counted in an
// interval, some are "marked", and under the null hypothesis each event is
// marked with probability at most ρ, where ρ may change from one interval
// to the next. That covers every check serin makes:
//
//   - which side an error came from: events are errors, marked means from
//     the canary, ρ is the canary's share of the requests in the interval;
//   - which side a slow request came from (above a histogram bound), the
//     same way;
//   - which side a downstream call came from, with ρ the canary's share of
//     inbound requests: a canary that calls more per request is marked more;
//   - whether a side's error rate is above an SLO: events are requests,
//     marked means failed, ρ is the SLO.
package sequential

import "math"

// oddsGrid are the alternatives of the mixture: under the alternative with
// odds ratio r an event is marked with odds r times the null's. A discrete
// mixture keeps the e-process exact (a finite sum of martingales) and cheap
// to update, and spreading it from a 1.25× to a 1000× effect makes the test
// near-optimal for small effects that need many events and for gross ones
// that must be caught within a scrape.
var oddsGrid = [...]float64{1.25, 1.5, 2, 3, 5, 10, 30, 100, 1000}

// OddsTest is a mixture sequential probability ratio test of the null
// hypothesis "each event is marked with probability at most ρ" against
// "more often". Its e-value starts at 1. Under the null it is a
// nonnegative supermartingale, so it reaches 1/α with probability at most
// α, ever.
//
// Why each factor is valid: for one interval with n events of which k are
// marked, the factor for odds ratio r is (θ/ρ)^k ((1-θ)/(1-ρ))^(n-k) with
// θ = ρr/(ρr+1-ρ). Under Binomial(n, p) with p ≤ ρ its expectation is
// (1 + (p-ρ)(θ-ρ)/(ρ(1-ρ)))^n ≤ 1, since θ > ρ. When the marked events are
// drawn without replacement (errors split between two finite samples, a
// hypergeometric), Hoeffding (1963, Theorem 4) bounds the expectation of
// any convex function, such as this exponential in k, by the binomial one.
//
// The mixture is over the alternatives and over when the regression
// began. A canary may turn bad mid-rollout (a leak, a dependency that
// fails): a test that had to start at the beginning would first have to
// win back all the evidence its clean history gave against large effects,
// and a gross fault would go unseen for several scrapes. So the e-value is
// the weighted sum, over every start s, of the test started at interval s,
// with weights w_s = 1/(s(s+1)) that sum to 1: a fixed mixture of test
// martingales (each is w_s until it starts), hence one itself. It costs a
// factor of 2 for a regression present from the start, and ln(s(s+1))
// for one that begins at interval s. The sum follows the Shiryaev-Roberts
// recursion R_t = (R_{t-1} + w_t)·LR_t, one number per alternative.
//
// The zero value is ready to use.
type OddsTest struct {
	// logR is, per alternative, the log of the weighted sum over starts.
	logR [len(oddsGrid)]float64
	// intervals is how many informative intervals have been seen.
	intervals int
	// Events and Marked are the totals seen.
	Events, Marked float64
}

// Update adds one interval: events counted, of which marked were marked,
// with null share rho. An interval with no events, or a ρ outside (0, 1)
// (one side had no traffic, so it tells nothing), leaves the test as it
// was. Counts are rounded to whole events, and marked is capped at events.
func (t *OddsTest) Update(marked, events, rho float64) {
	n := math.Round(events)
	k := math.Min(math.Max(math.Round(marked), 0), n)
	if n <= 0 || !(rho > 0 && rho < 1) {
		return
	}
	t.Events += n
	t.Marked += k
	if t.intervals == 0 {
		for i := range t.logR {
			t.logR[i] = math.Inf(-1) // no start yet: the sum is empty
		}
	}
	t.intervals++
	s := float64(t.intervals)
	logW := -math.Log(s * (s + 1))
	for i, r := range oddsGrid {
		theta := rho * r / (rho*r + 1 - rho)
		logLR := k*math.Log(theta/rho) + (n-k)*math.Log((1-theta)/(1-rho))
		t.logR[i] = logAddExp(t.logR[i], logW) + logLR
	}
}

// Evidence is the e-value: the mean over the alternatives of the weighted
// sum over starts, plus the weight of the starts still to come.
func (t *OddsTest) Evidence() float64 {
	if t.intervals == 0 {
		return 1
	}
	m := math.Inf(-1)
	for _, l := range t.logR {
		m = math.Max(m, l)
	}
	sum := 0.0
	for _, l := range t.logR {
		sum += math.Exp(l - m)
	}
	// Σ_{s>t} 1/(s(s+1)) = 1/(t+1).
	rest := math.Log(1 / float64(t.intervals+1))
	return math.Exp(logAddExp(m+math.Log(sum/float64(len(t.logR))), rest))
}

// logAddExp is log(e^a + e^b), computed without overflow.
func logAddExp(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	if math.IsInf(b, -1) {
		return a
	}
	m := math.Max(a, b)
	return m + math.Log(math.Exp(a-m)+math.Exp(b-m))
}

// Mean averages e-values of tests that run on the same data: the mean of
// test martingales for one filtration is a test martingale, whatever their
// dependence, so the mean of the e-values of several bounds is itself a
// valid e-value, at the cost of at most a factor of len(es).
func Mean(es ...float64) float64 {
	if len(es) == 0 {
		return 1
	}
	s := 0.0
	for _, e := range es {
		s += e
	}
	return s / float64(len(es))
}
