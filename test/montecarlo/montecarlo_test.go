package montecarlo

import (
	"math"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// The tests assert on counts of simulated rollouts and ticks, never on
// wall-clock time; each prints its seed so that a failure can be replayed
// with Run.

func aa(rps, errors float64) Scenario {
	return Scenario{RPS: rps, Errors: errors, HopErrors: errors, MedianMs: 20, Sigma: 0.5, Scrape: time.Second, StepInterval: 30 * time.Second}
}

// The new judge's whole-rollout false rollback probability is α = 1%: over
// 1,000 healthy canaries at most 1% may be rolled back, at the loads
// where the old judge rolled back most of them.
func TestNewJudgeAAFalseRollbacks(t *testing.T) {
	for _, c := range []struct {
		name string
		sc   Scenario
		seed uint64
	}{
		{"50 rps, 0.5% errors", aa(50, 0.005), 11},
		{"200 rps, 0.9% errors", aa(200, 0.009), 12},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 1000
			outs, err := Run(t.Context(), c.sc, New, c.seed, n)
			if err != nil {
				t.Fatal(err)
			}
			tl := Summarize(outs)
			t.Logf("seed %d: of %d rollouts %d rolled back, %d promoted, %d paused, %d undecided", c.seed, n,
				tl.Count[RolledBack], tl.Count[Promoted], tl.Count[Paused], tl.Count[Undecided])
			if got := tl.Count[RolledBack]; got > n/100 {
				for _, o := range outs {
					if o.Decision == RolledBack {
						t.Logf("rollout %d (seed %d) rolled back at %v: %s", o.Index, o.Seed, o.At, o.Reason)
					}
				}
				t.Fatalf("seed %d: %d of %d healthy canaries rolled back, want at most %d", c.seed, got, n, n/100)
			}
			if got := tl.Count[Promoted]; got < n-n/100 {
				t.Errorf("seed %d: %d of %d healthy canaries promoted (%v), want at least %d", c.seed, got, n, tl.Count, n-n/100)
			}
		})
	}
}

// A canary that starts failing half its requests at 10% weight is rolled
// back at the first tick after the fault begins, having read two 1 s
// scrapes of it, in at least 90% of the trials, and by the second tick in
// all of them. The fault begins just after a tick, the worst phase for the
// tick cadence; the scrape phase is random. When the first of those
// scrapes lands just after the fault, the first tick has seen only about
// one second of it (some 10 canary errors), which is not always enough
// evidence against α for a fault that may begin at any time; see README.
func TestNewJudgeFastFaultWithinTwoScrapes(t *testing.T) {
	const seed, trials = 21, 50
	sc := aa(200, 0.005)
	sc.ExtraErrors, sc.EffectFrom = 0.5-sc.Errors, 10*time.Second
	outs, err := Run(t.Context(), sc, New, seed, trials)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for _, o := range outs {
		scrapes := int(math.Ceil(float64(o.Read-sc.EffectFrom) / float64(sc.Scrape)))
		if o.Decision == RolledBack && o.At <= sc.EffectFrom+tickInterval && scrapes <= 2 {
			first++
		}
		if o.Decision != RolledBack || o.At > sc.EffectFrom+2*tickInterval {
			t.Errorf("rollout %d (seed %d): %v at %v, having read %d scrapes since the fault began at %v, "+
				"want rolled back by %v: %s", o.Index, seed, o.Decision, o.At, scrapes, sc.EffectFrom,
				sc.EffectFrom+2*tickInterval, o.Reason)
		}
	}
	if first < trials*9/10 {
		t.Errorf("seed %d: %d of %d rolled back at the first tick after the fault, within 2 scrapes; want at least %d",
			seed, first, trials, trials*9/10)
	}
	t.Logf("%d of %d rolled back at the first tick after the fault (2 scrapes), the rest at the second", first, trials)
}

// When stable itself is above the 1% error SLO, the result says so, the
// canary's SLO check is never failed for it, and the rollout holds
// (onStableViolation's default) instead of rolling back.
func TestNewJudgeStableAboveSLO(t *testing.T) {
	const seed, trials = 31, 20
	sc := aa(200, 0.015)
	sc.StepInterval = 5 * time.Minute
	limit := 4 * time.Minute
	for i := range uint64(trials) {
		j, err := newNewJudge(sc)
		if err != nil {
			t.Fatal(err)
		}
		var stableAbove, canaryFailed bool
		var firstAt time.Duration
		j.onResult = func(now time.Time, res analysis.Result) {
			for _, c := range res.Checks {
				if c.Kind == analysis.KindErrorSLO && c.StableAboveLimit && res.StableAboveSLO && !stableAbove {
					stableAbove, firstAt = true, now.Sub(t0)
				}
				if c.Kind == analysis.KindErrorSLO && c.Verdict == analysis.Fail {
					canaryFailed = true
				}
			}
		}
		o := run(t.Context(), sc, j, seed, i, limit)
		switch {
		case o.Decision == RolledBack || o.Decision == Promoted:
			t.Errorf("rollout %d (seed %d): %v at %v, want holding with stable above its SLO: %s", i, seed, o.Decision, o.At, o.Reason)
		case !stableAbove:
			t.Errorf("rollout %d (seed %d): stable at 1.5%% never reported above the 1%% SLO in %v", i, seed, limit)
		case canaryFailed:
			t.Errorf("rollout %d (seed %d): the canary's error SLO check failed for stable's errors", i, seed)
		default:
			t.Logf("rollout %d: stable reported above its SLO from %v", i, firstAt)
		}
	}
}

// The same seed gives the same rollouts, whatever the scheduling.
func TestRunIsDeterministic(t *testing.T) {
	sc := aa(50, 0.009)
	sc.ExtraErrors = 0.02
	a, err := Run(t.Context(), sc, New, 5, 16)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(t.Context(), sc, New, 5, 16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("rollout %d (seed 5): %+v then %+v", i, a[i], b[i])
		}
	}
}

// increase() is Prometheus 2.x's: extrapolated to the window's edges, and
// a series created inside the window not counted from zero.
func TestIncreaseAsPrometheus(t *testing.T) {
	col := func(vs ...float64) [][]float64 {
		out := make([][]float64, len(vs))
		for i, v := range vs {
			out[i] = []float64{v}
		}
		return out
	}
	for _, c := range []struct {
		name       string
		ts         []int64
		vs         [][]float64
		start, end int64
		want       float64
	}{
		// The first cause: 3 samples 1 s apart in a 3 s window
		// span 2 s and are stretched to 3 s, so one error reads as 1.5.
		{"fast window ×1.5", []int64{500, 1500, 2500}, col(10, 10, 11), 0, 3000, 1.5},
		{"samples at both edges", []int64{0, 1000, 2000, 3000}, col(10, 11, 12, 13), 0, 3000, 3},
		// Created at 27.5 s with 1 error: the zero point is 2 s before the
		// first sample, farther than 1.1 intervals, so the start gets half
		// an interval and the first error is lost.
		{"series created inside the window", []int64{27500, 28500, 29500}, col(1, 1, 2), 0, 30000, 1.5},
		{"no increase", []int64{27500, 28500, 29500}, col(4, 4, 4), 0, 30000, 0},
		// After a reset the counter counts from zero again: 5, 1, 2 is 1 + 1.
		{"counter reset", []int64{0, 1000, 2000}, col(5, 1, 2), 0, 2000, 2},
	} {
		if got := increase(c.ts, c.vs, 0, c.start, c.end); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: increase = %v, want %v", c.name, got, c.want)
		}
	}
}

// The samplers have the right means and variances.
func TestSamplers(t *testing.T) {
	g := newRNG(7, 0)
	const n = 20000
	for _, c := range []struct {
		name       string
		draw       func() float64
		mean, vari float64
	}{
		{"poisson 0.3", func() float64 { return g.poisson(0.3) }, 0.3, 0.3},
		{"poisson 4", func() float64 { return g.poisson(4) }, 4, 4},
		{"poisson 180", func() float64 { return g.poisson(180) }, 180, 180},
		{"binomial 40, 0.01", func() float64 { return g.binomial(40, 0.01) }, 0.4, 0.396},
		{"binomial 900, 0.3", func() float64 { return g.binomial(900, 0.3) }, 270, 189},
		{"binomial 900, 0.9", func() float64 { return g.binomial(900, 0.9) }, 810, 81},
	} {
		var s, s2 float64
		for range n {
			x := c.draw()
			s += x
			s2 += x * x
		}
		mean := s / n
		vari := s2/n - mean*mean
		if se := math.Sqrt(c.vari / n); math.Abs(mean-c.mean) > 5*se {
			t.Errorf("%s: mean %v, want %v ± %v", c.name, mean, c.mean, 5*se)
		}
		if math.Abs(vari-c.vari) > 0.1*c.vari {
			t.Errorf("%s: variance %v, want %v ± 10%%", c.name, vari, c.vari)
		}
	}
}
