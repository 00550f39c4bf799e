package sequential

import (
	"math"
	"math/rand/v2"
	"testing"
)

// binomial draws from Binomial(n, p) by counting Bernoulli trials; the
// counts here are small.
func binomial(rng *rand.Rand, n int, p float64) float64 {
	k := 0
	for range n {
		if rng.Float64() < p {
			k++
		}
	}
	return float64(k)
}

// Under the null, checked after every interval for a long time, the test
// crosses 1/α in at most about α of the histories (Ville's inequality).
func TestOddsTestFalseAlarmsAtMostAlpha(t *testing.T) {
	const histories, steps, alpha = 2000, 300, 0.05
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		p    func(rho float64) float64 // the true share under the null
	}{
		{"at the boundary", func(rho float64) float64 { return rho }},
		{"inside the null", func(rho float64) float64 { return rho / 2 }},
	} {
		alarms := 0
		for range histories {
			var ot OddsTest
			for s := range steps {
				rho := []float64{0.1, 0.25, 0.5}[s*3/steps] // the weight changes, as in a rollout
				ot.Update(binomial(rng, 3, tc.p(rho)), 3, rho)
				if ot.Evidence() >= 1/alpha {
					alarms++
					break
				}
			}
		}
		rate := float64(alarms) / histories
		// α plus three standard errors of the estimate.
		if bound := alpha + 3*math.Sqrt(alpha*(1-alpha)/histories); rate > bound {
			t.Errorf("%s: false alarm rate %.3f over %d histories, want ≤ %.3f", tc.name, rate, histories, bound)
		}
		t.Logf("%s: false alarm rate %.4f (α = %v)", tc.name, rate, alpha)
	}
}

// A gross effect is seen from a handful of events: 10 errors of 11 from
// a canary with 10% of the traffic.
func TestOddsTestGrossEffectIsFast(t *testing.T) {
	var ot OddsTest
	ot.Update(10, 11, 0.1)
	if e := ot.Evidence(); e < 1/0.001 {
		t.Errorf("evidence %g after 10 of 11 events marked at ρ = 0.1, want ≥ 1000", e)
	}
}

// Events marked exactly at the null share give no evidence, however many.
func TestOddsTestNoEffectNoEvidence(t *testing.T) {
	var ot OddsTest
	for range 1000 {
		ot.Update(10, 100, 0.1)
	}
	if e := ot.Evidence(); e > 1 {
		t.Errorf("evidence %g with marked share equal to ρ, want ≤ 1", e)
	}
	if ot.Events != 100000 || ot.Marked != 10000 {
		t.Errorf("totals %v/%v, want 10000/100000", ot.Marked, ot.Events)
	}
}

// Intervals with no information leave the test alone.
func TestOddsTestIgnoresEmptyIntervals(t *testing.T) {
	var ot OddsTest
	ot.Update(0, 0, 0.5)
	ot.Update(3, 3, 0)
	ot.Update(3, 3, 1)
	if e := ot.Evidence(); e != 1 || ot.Events != 0 {
		t.Errorf("evidence %g, events %v after empty intervals, want 1 and 0", e, ot.Events)
	}
}

func TestMean(t *testing.T) {
	if m := Mean(1, 3); m != 2 {
		t.Errorf("Mean(1, 3) = %v", m)
	}
	if m := Mean(); m != 1 {
		t.Errorf("Mean() = %v, want 1", m)
	}
}

func TestProportionIntervalCoversAndShrinks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const p, alpha, histories = 0.02, 0.05, 500
	misses := 0
	for range histories {
		k, n := 0.0, 0.0
		for range 50 {
			k += binomial(rng, 100, p)
			n += 100
			if iv := ProportionInterval(k, n, alpha); p < iv.Low || p > iv.High {
				misses++
				break
			}
		}
	}
	if rate := float64(misses) / histories; rate > alpha {
		t.Errorf("the confidence sequence missed p in %.3f of histories, want ≤ %v", rate, alpha)
	}
	small, large := ProportionInterval(2, 100, alpha), ProportionInterval(200, 10000, alpha)
	if !(small.Low < 0.02 && small.High > 0.02) || large.High-large.Low >= small.High-small.Low {
		t.Errorf("intervals %v (2/100) and %v (200/10000): want both around 2%%, the second narrower", small, large)
	}
	if iv := ProportionInterval(0, 0, alpha); iv != (Interval{0, 1}) {
		t.Errorf("no data: %v, want [0, 1]", iv)
	}
}

// A gross fault after a long clean history is seen at once: the test that
// starts with the fault has not paid for the clean intervals.
func TestOddsTestFaultAfterACleanHistory(t *testing.T) {
	var ot OddsTest
	for range 30 {
		ot.Update(0, 2, 0.1) // two stable errors a scrape, none from the canary
	}
	// Then 50% errors on a canary at 10% of 200 rps: in one scrape, 10 of
	// the 11 errors come from the canary.
	ot.Update(10, 11, 0.1)
	if e := ot.Evidence(); e < 1/0.00125 {
		t.Errorf("evidence %g after a fault in one scrape following 30 clean ones, want ≥ 800", e)
	}
}
