package montecarlo

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/montecarlo/legacy"
)

// tickInterval is the analysis interval of both judges (the default).
const tickInterval = 2 * time.Second

// oldJudge is the judge of commit 21650dc with its decision rules.
type oldJudge struct {
	sc  Scenario
	cfg legacy.Config
	r   *legacy.Rollout
}

func newOldJudge(sc Scenario) *oldJudge { return &oldJudge{sc: sc, cfg: legacy.DefaultConfig()} }

func (o *oldJudge) tick(_ context.Context, now time.Time, p *prom) (int32, time.Duration, *Outcome) {
	if o.r == nil {
		o.r = legacy.NewRollout(v1alpha1.DefaultSteps, o.sc.StepInterval, now)
		return o.r.Weight, tickInterval, nil
	}
	res := legacy.Evaluate(legacy.Measure(legacySource{p}, o.cfg, o.sc.Scrape, now), o.cfg)
	o.r.Tick(res, now)
	switch o.r.Phase {
	case legacy.RolledBack:
		return 0, 0, &Outcome{Decision: RolledBack, Reason: o.r.Reason}
	case legacy.Succeeded:
		return 100, 0, &Outcome{Decision: Promoted}
	}
	return o.r.Weight, tickInterval, nil
}

// newJudge is serin as it is now: the real analysis.Runner (and so the
// real Tracker and Evaluate) on a MetricSource that reads the stand-in
// Prometheus, the real rollout.Next, and what the engine does around
// them (rollout/engine.go: observe, apply, converge).
type newJudge struct {
	spec   v1alpha1.RolloutSpec
	cfg    analysis.Config
	runner *analysis.Runner
	src    *metricSource
	st     v1alpha1.RolloutStatus
	route  int32 // the canary weight on the route
	// onResult, when set, sees every tick's analysis result.
	onResult func(now time.Time, res analysis.Result)
}

// newSpec is the rollout the new judge runs: the default steps and
// analysis, the scenario's step length.
func newSpec(sc Scenario) v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2",
		StepInterval: &metav1.Duration{Duration: sc.StepInterval},
	}
}

func newNewJudge(sc Scenario) (*newJudge, error) {
	spec := newSpec(sc)
	cfg, err := rollout.AnalysisConfig(spec)
	if err != nil {
		return nil, fmt.Errorf("analysis config of the simulated rollout: %w", err)
	}
	src := &metricSource{}
	return &newJudge{spec: spec, cfg: cfg, src: src,
		runner: analysis.NewRunner(analysis.RunnerOptions{Metrics: src, ScrapeInterval: sc.Scrape})}, nil
}

// target is the simulated service in subset mode.
var target = analysis.Target{Namespace: "shop", Service: "checkout",
	Canary: analysis.Side{Host: "checkout.shop.svc.cluster.local", Version: "v2"},
	Stable: analysis.Side{Host: "checkout.shop.svc.cluster.local", Version: "v1"}}

func (n *newJudge) tick(ctx context.Context, now time.Time, p *prom) (int32, time.Duration, *Outcome) {
	n.src.p = p
	obs := rollout.Observation{Generation: 1}
	st := n.st
	if st.Phase == "" || st.Phase == v1alpha1.PhasePending {
		obs.Preflight = &rollout.PreflightReport{}
	} else {
		obs.LiveWeight, obs.LiveKnown = n.route, true
		analyze := st.Phase == v1alpha1.PhaseProgressing && !n.spec.Paused && st.ObservedGeneration == 1 &&
			st.AppliedWeight == st.CanaryWeight && n.route == st.CanaryWeight
		if analyze {
			if last := st.Analysis.LastTickAt; last != nil {
				if due := last.Add(n.cfgInterval()); now.Before(due) {
					return n.route, due.Sub(now), nil
				}
			}
			res := n.analyze(ctx, now)
			obs.Result = &res
		}
	}
	d := rollout.Next(st, n.spec, obs, now)
	n.st = d.Status
	if d.Pause {
		n.spec.Paused = true
	}
	// converge: the weight decided is written to the route and confirmed.
	if n.st.Phase != v1alpha1.PhaseFailed && n.st.AppliedWeight != n.st.CanaryWeight {
		n.route = n.st.CanaryWeight
		n.st.AppliedWeight = n.st.CanaryWeight
	}
	switch n.st.Phase {
	case v1alpha1.PhaseRolledBack:
		return 0, 0, &Outcome{Decision: RolledBack, Reason: n.st.Message}
	case v1alpha1.PhaseSucceeded:
		return 100, 0, &Outcome{Decision: Promoted}
	case v1alpha1.PhasePaused:
		return n.route, 0, &Outcome{Decision: Paused, Reason: n.st.Message}
	case v1alpha1.PhaseFailed, v1alpha1.PhaseAborted:
		return 0, 0, &Outcome{Decision: Undecided, Reason: n.st.Message}
	}
	if d.RequeueAfter <= 0 {
		return n.route, 0, &Outcome{Decision: Undecided, Reason: n.st.Message}
	}
	return n.route, d.RequeueAfter, nil
}

func (n *newJudge) cfgInterval() time.Duration {
	return n.spec.Defaulted().Analysis.Interval.Duration
}

// analyze asks the Runner for a tick's result, as Engine.analyze does.
func (n *newJudge) analyze(ctx context.Context, now time.Time) analysis.Result {
	req := analysis.Request{Namespace: "shop", Name: "checkout", Target: target, Config: n.cfg, Now: now,
		Start: rollout.AnalysisStart(n.st, now)}
	res, err := n.runner.Analyze(ctx, req)
	if err != nil {
		res = analysis.Result{Verdict: analysis.Inconclusive, Reason: "analysis could not run: " + err.Error()}
	}
	if n.onResult != nil {
		n.onResult(now, res)
	}
	return res
}

// metricSource is the new MetricSource on the stand-in Prometheus: the raw
// cumulative counters as of the last scrape.
type metricSource struct{ p *prom }

// Inbound wraps analysis.ErrNoData, with the zero counters, for a side
// that has no series yet, as analysis/prometheus does.
func (s *metricSource) Inbound(_ context.Context, _ analysis.Target, at time.Time) (analysis.Pair, error) {
	pair := s.p.instant(scopeInbound, at)
	switch {
	case pair.Canary.Buckets == nil:
		return pair, fmt.Errorf("no inbound series for checkout v2: %w", analysis.ErrNoData)
	case pair.Stable.Buckets == nil:
		return pair, fmt.Errorf("no inbound series for checkout v1: %w", analysis.ErrNoData)
	}
	return pair, nil
}

// Hops returns both hops, each seen at least from stable.
func (s *metricSource) Hops(_ context.Context, _ analysis.Target, at time.Time) (map[string]analysis.Pair, error) {
	out := map[string]analysis.Pair{}
	for i, h := range hops {
		out[h.name] = s.p.instant(scopePayments+i, at)
	}
	return out, nil
}

// Scalar serves no custom queries: the simulated rollouts have none.
func (s *metricSource) Scalar(context.Context, string, time.Time) (float64, error) {
	return 0, fmt.Errorf("no custom queries in the simulation: %w", analysis.ErrNoData)
}
