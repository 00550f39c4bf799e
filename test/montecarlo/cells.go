package montecarlo

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Judge names the judge a cell runs.
type Judge int

// The judges.
const (
	Old Judge = iota
	New
)

func (j Judge) String() string { return [...]string{"old", "new"}[j] }

func (j Judge) build(sc Scenario) (judge, error) {
	if j == Old {
		return newOldJudge(sc), nil
	}
	return newNewJudge(sc)
}

// Run simulates n rollouts of sc under judge j, rollout i from (seed, i),
// on every CPU. The outcomes are in index order: a run is deterministic
// whatever the scheduling.
func Run(ctx context.Context, sc Scenario, j Judge, seed uint64, n int) ([]Outcome, error) {
	out := make([]Outcome, n)
	errs := make([]error, n)
	limit := limitFor(sc, len(v1alpha1.DefaultSteps)-1)
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				jd, err := j.build(sc)
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = run(ctx, sc, jd, seed, uint64(i), limit)
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Tally sums a cell's outcomes.
type Tally struct {
	N     int
	Count [4]int // by Decision
	// rollbackAt are the times of the rollbacks, since the start.
	rollbackAt []time.Duration
}

// Summarize tallies outcomes.
func Summarize(outs []Outcome) Tally {
	t := Tally{N: len(outs)}
	for _, o := range outs {
		t.Count[o.Decision]++
		if o.Decision == RolledBack {
			t.rollbackAt = append(t.rollbackAt, o.At)
		}
	}
	slices.Sort(t.rollbackAt)
	return t
}

// RollbackShare is the share of rollouts rolled back, with its 95% Wilson
// interval.
func (t Tally) RollbackShare() (p, lo, hi float64) {
	return wilson(t.Count[RolledBack], t.N)
}

// TimeToRollback is the q-quantile of the time from the start to the
// rollback, over every rollout: one not rolled back counts as never, so
// the quantile is false (never) when fewer than q of them were.
func (t Tally) TimeToRollback(q float64) (time.Duration, bool) {
	k := int(math.Ceil(q*float64(t.N))) - 1
	if k < 0 || k >= len(t.rollbackAt) {
		return 0, false
	}
	return t.rollbackAt[k], true
}

// wilson is the share x/n with its 95% Wilson score interval.
func wilson(x, n int) (p, lo, hi float64) {
	if n == 0 {
		return math.NaN(), 0, 1
	}
	const z = 1.959963984540054
	p = float64(x) / float64(n)
	nn := float64(n)
	den := 1 + z*z/nn
	center := (p + z*z/(2*nn)) / den
	half := z / den * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn))
	return p, math.Max(0, center-half), math.Min(1, center+half)
}

// percent formats a share with its interval: "11.5% [8.7–15.0]".
func percent(p, lo, hi float64) string {
	return fmt.Sprintf("%.1f%% [%.1f–%.1f]", 100*p, 100*lo, 100*hi)
}

// seconds formats a time to decide, or "never".
func seconds(d time.Duration, ok bool) string {
	if !ok {
		return "never"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
