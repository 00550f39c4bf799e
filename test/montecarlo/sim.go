package montecarlo

import (
	"context"
	"time"
)

// Decision is how a simulated rollout ended.
type Decision int

// The decisions. Undecided means the rollout was still progressing (or
// holding) when the simulation gave up on it.
const (
	RolledBack Decision = iota
	Promoted
	Paused
	Undecided
)

func (d Decision) String() string {
	return [...]string{"rolled back", "promoted", "paused", "undecided"}[d]
}

// Outcome is one simulated rollout's end.
type Outcome struct {
	Decision Decision
	// At is the time of the deciding tick, since the rollout's start.
	At time.Duration
	// Read is the time of the scrape that tick read, since the start.
	Read time.Duration
	// Reason is the judge's reason for the decision.
	Reason string
	// Seed and Index replay the rollout.
	Seed, Index uint64
}

// judge is one rollout controller under test: the old judge with its
// rules, or the real Runner and rollout.Next.
type judge interface {
	// tick runs one engine tick at now, reading the stand-in Prometheus.
	// It returns the canary weight on the route after the tick, when the
	// next tick is due, and the outcome once the rollout has ended.
	tick(ctx context.Context, now time.Time, p *prom) (weight int32, next time.Duration, out *Outcome)
}

// t0 is the simulated rollouts' start, on a whole second so that the
// engine's ticks fall on whole seconds too, as they would after the
// status's round trip through the API server.
var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// history is how long stable has served alone before the rollout, so that
// its series exist and fill every window.
const history = 60 * time.Second

// run simulates one rollout of sc under j. The traffic is drawn from
// (seed, index) alone, so the two judges see the same requests for as
// long as their weights agree. It simulates at most limit.
func run(ctx context.Context, sc Scenario, j judge, seed, index uint64, limit time.Duration) Outcome {
	g := newRNG(seed, index)
	m := newMesh()
	b := newBehaviours(sc)
	p := newProm(t0, sc.Scrape)
	// The scrape's phase against the ticks is random, as in a real mesh.
	phase := time.Duration(g.uniform() * float64(sc.Scrape))
	nextScrape := phase - sc.Scrape*(history/sc.Scrape+1)
	t := nextScrape
	nextTick := time.Duration(0)
	weight := int32(0)
	for t <= limit {
		ev := min(nextScrape, nextTick)
		if t < sc.EffectFrom && sc.EffectFrom < ev {
			ev = sc.EffectFrom
		}
		if ev > t {
			can := b.canaryBefore
			if t >= sc.EffectFrom {
				can = b.canaryAfter
			}
			m.serve(g, sc.RPS, weight, ev-t, can, b.stable)
			t = ev
		}
		if t == nextScrape {
			p.scrape(m, t)
			nextScrape += sc.Scrape
		}
		if t == nextTick {
			w, next, out := j.tick(ctx, t0.Add(t), p)
			if out != nil {
				out.At, out.Seed, out.Index = t, seed, index
				if s := p.latest(t.Milliseconds()); s != nil {
					out.Read = time.Duration(s.at) * time.Millisecond
				}
				return *out
			}
			weight, nextTick = w, t+next
		}
	}
	return Outcome{Decision: Undecided, At: limit, Seed: seed, Index: index}
}

// limitFor is how long a rollout of sc may take before it counts as
// undecided: four times its nominal length and five minutes more.
func limitFor(sc Scenario, steps int) time.Duration {
	return 4*time.Duration(steps)*sc.StepInterval + 5*time.Minute
}
