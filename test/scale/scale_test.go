package scale

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Figures of TestHundredRolloutsKeepTheirTicks.
const (
	hundred = 100
	// hundredInterval is every rollout's analysis interval: the default.
	hundredInterval = 2 * time.Second
	// maxGapIntervals is the longest a rollout in progress may go without
	// a tick, in its own intervals.
	maxGapIntervals = 3
	// maxRollbackTicks is how many of its own ticks a canary with 50%
	// errors may take to be rolled back.
	maxRollbackTicks = 2
	// steadyIntervals is how long the healthy history is watched before
	// the fault, in intervals.
	steadyIntervals = 20
)

// TestHundredRolloutsKeepTheirTicks runs 100 rollouts in progress on the
// real stack, each on its own service, and asserts by counting ticks, not
// by wall-clock thresholds: every rollout's analysis history (the changes
// of its serin_rollout_last_analysis_timestamp_seconds, sampled from the
// controller's /metrics) has no gap of more than 3 of its intervals, and
// a canary among them given 50% errors is rolled back (canary weight 0 on
// its VirtualService) within 2 of its own ticks of the fault. The waits
// are bounds that end the test, not its assertions.
func TestHundredRolloutsKeepTheirTicks(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	r := start(t, ctx, hundred, 200, hundredInterval)
	s := r.waitStarted(2 * time.Minute)
	if s.atFirstStep < hundred {
		t.Errorf("%d of %d rollouts reached their first step", s.atFirstStep, hundred)
	}

	logf(t, "watching %d healthy rollouts for %d intervals", hundred, steadyIntervals)
	time.Sleep(steadyIntervals * hundredInterval)
	faulty := service(hundred/2 - 1)
	if err := r.ready(faulty, faulty, 30*hundredInterval); err != nil {
		t.Fatal(err)
	}
	rb := r.breakCanary(faulty, faulty, 30*hundredInterval)
	logf(t, "%s: weight 0 after %v and %d of its ticks %s", faulty, rb.latency.Round(time.Millisecond), rb.ticks, rb.note)
	time.Sleep(maxGapIntervals * hundredInterval) // so that a stall after the fault shows too
	end := time.Now()

	var intervals []float64
	for _, ts := range r.smp.allTicks() {
		for i := 1; i < len(ts); i++ {
			intervals = append(intervals, ts[i].Sub(ts[i-1]).Seconds()/hundredInterval.Seconds())
		}
	}
	t.Logf("%d ticks of %d rollouts; between two ticks of one rollout, in intervals: p50 %.2f, p90 %.2f, p99 %.2f, max %.2f",
		len(intervals)+len(r.smp.allTicks()), hundred, percentile(intervals, 50), percentile(intervals, 90), percentile(intervals, 99), maxOf(intervals))
	gaps := historyGaps(r, faulty, rb, end)
	bad := 0
	for _, g := range gaps {
		if g.intervals > maxGapIntervals {
			bad++
		}
	}
	worst := slices.SortedFunc(slices.Values(gaps), func(a, b gap) int { return cmp.Compare(b.intervals, a.intervals) })
	t.Logf("tick gaps: %d of %d rollouts went more than %d intervals without a tick; longest: %s",
		bad, hundred, maxGapIntervals, describeGaps(worst[:min(5, len(worst))]))
	if bad > 0 {
		t.Errorf("%d of %d rollouts in progress went more than %d analysis intervals (%v) without a tick; longest: %s",
			bad, hundred, maxGapIntervals, maxGapIntervals*hundredInterval, describeGaps(worst[:min(5, len(worst))]))
	}
	switch {
	case !rb.done:
		t.Errorf("the canary of %s with %.0f%% errors was not rolled back: %s; %d of its ticks ran since the fault",
			faulty, 100*faultErrorRate, rb.note, rb.ticks)
	case rb.ticks > maxRollbackTicks:
		t.Errorf("the canary of %s with %.0f%% errors was rolled back after %d of its ticks (%v), want at most %d",
			faulty, 100*faultErrorRate, rb.ticks, rb.latency.Round(time.Millisecond), maxRollbackTicks)
	case rb.ticks == 0:
		t.Errorf("the canary of %s went to 0%% with none of its ticks since the fault: not serin's rollback", faulty)
	}
}

// gap is a rollout's longest time without a tick, in its intervals.
type gap struct {
	rollout   string
	intervals float64
	after     time.Duration // from the rollouts' creation to the gap's start
	ticks     int
}

// historyGaps returns, for each rollout created at the start, the longest
// stretch without a tick in its history: from its first tick to end (to
// its canary weight 0 for the faulty one), the stretch after its last
// tick included. A rollout never analysed counts as one gap spanning
// the whole run.
func historyGaps(r *run, faulty string, rb rollback, end time.Time) []gap {
	out := make([]gap, 0, len(r.names))
	for _, name := range r.names {
		until := end
		if name == faulty && rb.done {
			until = rb.at.Add(rb.latency)
		}
		ts := r.smp.ticksOf(name)
		g := gap{rollout: name, ticks: len(ts)}
		if len(ts) == 0 {
			g.intervals = end.Sub(r.created).Seconds() / hundredInterval.Seconds()
			out = append(out, g)
			continue
		}
		prev := ts[0]
		for _, t := range append(ts[1:], until) {
			if t.After(until) {
				t = until
			}
			if n := t.Sub(prev).Seconds() / hundredInterval.Seconds(); n > g.intervals {
				g.intervals, g.after = n, prev.Sub(r.created)
			}
			prev = t
		}
		out = append(out, g)
	}
	return out
}

func describeGaps(gs []gap) string {
	s := ""
	for i, g := range gs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %.1f intervals from %.0f s after the creates (%d ticks)", g.rollout, g.intervals, g.after.Seconds(), g.ticks)
	}
	return s
}
