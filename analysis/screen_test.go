package analysis

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The screen's bar: a canary with half its requests failing in one scrape
// of 10 canary and 90 stable requests is a suspect; the same traffic with
// the background's errors, or an answer no newer than the last reading,
// is not; and Suspect leaves the tests as they were.
func TestTrackerSuspect(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tr := NewTracker(inboundOnly(), t0)
	canary, stable := Stats{Requests: 100}, Stats{Requests: 900}
	tr.ObserveInbound(at(0), Pair{Canary: canary, Stable: stable, At: at(0)})
	for s := 1; s <= 5; s++ { // a healthy history: no errors on either side
		canary.Requests += 10
		stable.Requests += 90
		tr.ObserveInbound(at(s), Pair{Canary: canary, Stable: stable, At: at(s)})
	}
	before := tr.Measurements("checkout")
	bad := Pair{Canary: Stats{Requests: canary.Requests + 10, Errors: 5}, Stable: Stats{Requests: stable.Requests + 90}, At: at(6)}
	if !tr.Suspect(bad) {
		t.Errorf("5 of 10 canary requests failing, none of 90 stable: want a suspect")
	}
	if !reflect.DeepEqual(tr.Measurements("checkout"), before) {
		t.Errorf("Suspect changed the tests")
	}
	background := Pair{Canary: Stats{Requests: canary.Requests + 10}, Stable: Stats{Requests: stable.Requests + 90, Errors: 1}, At: at(6)}
	if tr.Suspect(background) {
		t.Errorf("no canary error: want no suspect")
	}
	one := Pair{Canary: Stats{Requests: canary.Requests + 10, Errors: 1}, Stable: Stats{Requests: stable.Requests + 90, Errors: 1}, At: at(6)}
	if tr.Suspect(one) {
		t.Errorf("1 canary error of 10 and 1 stable of 90 (0.5%% background): want no suspect")
	}
	old := bad
	old.At = at(5)
	if tr.Suspect(old) {
		t.Errorf("an answer no newer than the last reading: want no suspect")
	}
	cfg := inboundOnly()
	cfg.ErrorRate.DryRun = true
	dry := NewTracker(cfg, t0)
	dry.ObserveInbound(at(0), Pair{Canary: Stats{Requests: 100}, Stable: Stats{Requests: 900}, At: at(0)})
	if dry.Suspect(Pair{Canary: Stats{Requests: 110, Errors: 5}, Stable: Stats{Requests: 990}, At: at(1)}) {
		t.Errorf("a dry-run error check: want no suspect")
	}
}

// heldMetrics is fakeMetrics that also holds, per service, the counters
// of a newer answer, as a HeldSource does.
type heldMetrics struct {
	fakeMetrics
	held map[string]Pair
}

func (h heldMetrics) HeldInbound(t Target) (Pair, bool) {
	p, ok := h.held[t.Service]
	return p, ok
}

// Suspects names the rollouts whose held counters make them suspects, and
// only those with a baseline: the others' ticks judge.
func TestRunnerSuspects(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Traces, cfg.Hops = false, false
	m := heldMetrics{fakeMetrics: fakeMetrics{t0: t0.Add(-time.Hour), canary: 10, stable: 90}, held: map[string]Pair{}}
	r := NewRunner(RunnerOptions{Metrics: m, ScrapeInterval: time.Second})
	now := t0.Add(10 * time.Second)
	for _, svc := range []string{"checkout", "payments", "cart"} {
		req := Request{Namespace: "shop", Name: svc, Config: cfg, Target: Target{Service: svc}, Start: t0, Now: now}
		if svc == "cart" {
			req.Start = now // too early for its baseline
		}
		if _, err := r.Analyze(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// fakeMetrics' readings carry no At; the held ones are newer.
	reading, _ := m.Inbound(context.Background(), Target{}, now)
	next := func(canaryErrors float64) Pair {
		p := reading
		p.Canary.Requests += 10
		p.Canary.Errors += canaryErrors
		p.Stable.Requests += 90
		p.At = now.Add(time.Second)
		return p
	}
	m.held["checkout"], m.held["payments"], m.held["cart"] = next(6), next(0), next(6)
	got := r.Suspects()
	if want := []RolloutKey{{Namespace: "shop", Name: "checkout"}}; !slices.Equal(got, want) {
		t.Errorf("suspects %v, want %v: the failing canary with a baseline only", got, want)
	}
	if r := NewRunner(RunnerOptions{Metrics: m.fakeMetrics}); r.Suspects() != nil {
		t.Errorf("a source that holds nothing: want no suspects")
	}
}
