package analysis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// RunnerOptions are the Runner's sources and bounds.
type RunnerOptions struct {
	// Metrics measures from Prometheus; nil means no metric checks run and
	// the verdict can never be Pass.
	Metrics MetricSource
	// Traces measures from Jaeger; nil turns the trace checks off.
	Traces TraceSource
	// ScrapeInterval is the metrics scrape interval; windows always span
	// at least two scrapes. Default 15s, Prometheus's own default.
	ScrapeInterval time.Duration
	// MaxCallsPerEdge bounds the trace samples kept per edge and side.
	// Default 5000.
	MaxCallsPerEdge int
}

// Runner runs every check of a tick and judges them. It is the engine's
// Analyzer. It keeps each rollout's sequential tests (a Tracker) between
// ticks; after a controller restart it rebuilds them from the counters as
// they stood at the rollout's analysis start, which Prometheus still holds.
type Runner struct {
	o      RunnerOptions
	mu     sync.Mutex
	states map[string]*rolloutState // by namespace/name
	swept  time.Time                // when forgetIdle last looked
}

// rolloutState is one rollout's analysis between ticks.
type rolloutState struct {
	mu        sync.Mutex // one tick of a rollout at a time
	tracker   *Tracker
	baselined bool // the metrics baseline was read
	// hopsBaselined says the hops' baseline was read: apart from the
	// inbound one, so that a slow hop query (the largest answer of a big
	// mesh) leaves the inbound checks judged, only the hops waiting.
	hopsBaselined bool
	hopsFailed    bool      // a reading of the hops' baseline failed
	traced        time.Time // the end of the latest trace search
	used          time.Time
	target        Target // of the latest tick, for Suspects
	// base is the instant the baseline was read at (baselineAt), and since
	// when the tests' evidence begins when that is not the tracker's start:
	// the later baseline of a first tick that came late.
	base, since time.Time
}

// ingestLag is how long Prometheus may take to make a scrape queryable:
// up to a second, and never more than the interval itself.
func ingestLag(scrape time.Duration) time.Duration { return min(scrape, time.Second) }

// traceLag is how far behind now trace searches end, so that spans still
// on their way to Jaeger are found by the next search instead of missed.
const traceLag = 2 * time.Second

// NewRunner returns a Runner.
func NewRunner(o RunnerOptions) *Runner {
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = 15 * time.Second
	}
	if o.MaxCallsPerEdge <= 0 {
		o.MaxCallsPerEdge = 5000
	}
	return &Runner{o: o, states: map[string]*rolloutState{}}
}

// Analyze measures and judges one tick of req.
func (r *Runner) Analyze(ctx context.Context, req Request) (Result, error) {
	cfg := req.Config
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	st := r.state(req)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.target = req.Target
	var ms []Measurement
	if r.o.Traces != nil && cfg.Traces {
		if err := r.observeTraces(ctx, st, req); err != nil {
			ms = append(ms, pairChecks(req.Target.Service+" (traces)", "jaeger", err, traceLimit(cfg.HopErrorRate, cfg), traceLimit(cfg.HopLatency, cfg))...)
		}
	}
	if r.o.Metrics == nil {
		ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Source: "prometheus",
			Err: fmt.Errorf("no metrics source is configured: %w", ErrUnavailable)})
		ms = append(ms, st.tracker.Measurements(req.Target.Service)...) // the trace edges
	} else {
		inErr, hopsErr := r.observeMetrics(ctx, st, req)
		if st.baselined {
			ms = append(ms, withErrors(st.tracker.Measurements(req.Target.Service), req.Target.Service, cfg, inErr, hopsErr)...)
		} else {
			// No baseline yet (too early, or the source is down): one pair
			// of checks says why.
			ms = append(ms, pairChecks("", "prometheus", inErr, cfg.ErrorRate, cfg.Latency)...)
		}
		ms = append(ms, r.custom(ctx, req, cfg)...)
	}
	since := st.since
	if since.IsZero() {
		since = st.tracker.Start()
	}
	return withSince(Evaluate(ms, cfg), since), nil
}

// RolloutKey names a rollout.
type RolloutKey struct{ Namespace, Name string }

// Suspects names the rollouts whose canary the newest counters the metric
// source holds suggest has begun to fail (Tracker.Suspect), when it can
// tell without asking its server (HeldSource); nil otherwise. A rollout
// whose tick is under way is left to it. Run once per scrape interval,
// it is one pass over the shared answers that finds every failing canary,
// so that the caller ticks those first instead of in their turn.
func (r *Runner) Suspects() []RolloutKey {
	held, ok := r.o.Metrics.(HeldSource)
	if !ok {
		return nil
	}
	r.mu.Lock()
	keys, states := make([]string, 0, len(r.states)), make([]*rolloutState, 0, len(r.states))
	for k, st := range r.states {
		keys, states = append(keys, k), append(states, st)
	}
	r.mu.Unlock()
	var out []RolloutKey
	for i, st := range states {
		if !st.mu.TryLock() {
			continue
		}
		suspect := false
		if st.baselined {
			if p, ok := held.HeldInbound(st.target); ok {
				suspect = st.tracker.Suspect(p)
			}
		}
		st.mu.Unlock()
		if suspect {
			ns, name, _ := strings.Cut(keys[i], "/")
			out = append(out, RolloutKey{Namespace: ns, Name: name})
		}
	}
	return out
}

// withSince names the window of every check judged from the evidence
// since the analysis start: all but the custom checks, whose query has its
// own range.
func withSince(res Result, start time.Time) Result {
	for i := range res.Checks {
		if res.Checks[i].Kind != KindCustom {
			res.Checks[i].Since = start
		}
	}
	return res
}

// state returns the rollout's analysis state, new when the rollout's
// analysis start changed (a new rollout of the same name, or a restart of
// its analysis).
func (r *Runner) state(req Request) *rolloutState {
	start := req.Start
	if start.IsZero() {
		start = req.Now
	}
	// Whole seconds, as the API server stores the start: the same start
	// before and after the status round trip keeps the same tests.
	start = start.Truncate(time.Second)
	key := req.Namespace + "/" + req.Name
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetIdle(req.Now)
	st := r.states[key]
	if st == nil || !st.tracker.Start().Equal(start) {
		st = &rolloutState{tracker: NewTracker(req.Config, start), traced: r.firstTraced(start)}
		r.states[key] = st
	}
	st.used = req.Now
	return st
}

// observeMetrics reads the counters, first as they stood at the first
// scrape after the analysis start (the baseline), then now, and feeds the
// tracker.
func (r *Runner) observeMetrics(ctx context.Context, st *rolloutState, req Request) (inErr, hopsErr error) {
	t := req.Target
	// The baseline is the first scrape taken after the start: a sample's
	// counters hold the traffic up to its scrape, so differences from an
	// earlier one would count traffic from before the rollout (a
	// predecessor's errors on the same canary). It is read once Prometheus
	// has had time to ingest that scrape.
	start := st.tracker.Start().Add(r.o.ScrapeInterval)
	if !st.baselined && req.Now.Before(start.Add(ingestLag(r.o.ScrapeInterval))) {
		err := fmt.Errorf("the analysis begins with the first scrape after %s: %w", st.tracker.Start().Format(time.RFC3339), ErrNoData)
		return err, err
	}
	if !st.baselined {
		base := baselineAt(req, start)
		in, err := r.o.Metrics.Inbound(ctx, t, base)
		if err != nil && !errors.Is(err, ErrNoData) {
			return err, err
		}
		if base.After(start) {
			st.since = base
		}
		// A side with no series yet has all zero counters: its first
		// series count from zero.
		st.tracker.ObserveInbound(base, in)
		st.base, st.baselined = base, true
	}
	if req.Config.Hops && !st.hopsBaselined {
		// Hops are never observed before their baseline: a first reading
		// now would count every call since the counters began. It is of
		// the inbound baseline's instant; when that reading failed, a
		// later tick reads lateBaseline before now instead, once the
		// inbound instant is older: the hops' tests then begin later
		// (calls per request count the inbound traffic from the hops'
		// own baseline), where reading an instant that grows older would
		// be a query of the rollout's own on every tick, failing as the
		// first did when Prometheus is slow.
		at := st.base
		if st.hopsFailed {
			at = notLongBefore(req.Now, at)
		}
		hops, err := r.o.Metrics.Hops(ctx, t, at)
		if err != nil && !errors.Is(err, ErrNoData) {
			hopsErr, st.hopsFailed = err, true
		} else {
			st.tracker.ObserveHops(at, hops)
			st.hopsBaselined = true
		}
	}
	in, inErr := r.o.Metrics.Inbound(ctx, t, req.Now)
	if inErr == nil || errors.Is(inErr, ErrNoData) {
		st.tracker.ObserveInbound(req.Now, in)
	}
	if req.Config.Hops && st.hopsBaselined {
		var hops map[string]Pair
		hops, hopsErr = r.o.Metrics.Hops(ctx, t, req.Now)
		if hopsErr == nil {
			st.tracker.ObserveHops(req.Now, hops)
		}
	}
	return inErr, hopsErr
}

// lateBaseline is how far back the baseline of a first tick that came
// late is read: an instant that recent is served by the answers that
// every tick shares (the Prometheus source serves up to 30 s back from
// them), where an older one is a query of the rollout's own.
const lateBaseline = 10 * time.Second

// baselineAt is the instant the baseline is read at: the first scrape
// after the start, or, for a first tick more than lateBaseline after it
// when nothing of this analysis was ever shown, lateBaseline before now.
//
// Any instant after the first scrape is a valid baseline: a later one only
// leaves the traffic in between out of the tests, and never counts any
// from before the start, so the tests' error bounds hold from it (it is
// chosen by the queue, not by the data). A thousand rollouts queued for
// their first step reach their first tick a minute or more after their
// start; reading each one's start would be a query of its own (four, with
// the hops), and at that count those queries kept Prometheus from
// answering the shared ones for minutes. A rollout whose tests were shown
// from its start (req.Shown, after a controller restart) reads its start
// again, so that the evidence it had gathered is not lost.
func baselineAt(req Request, first time.Time) time.Time {
	if req.Shown {
		return first
	}
	return notLongBefore(req.Now, first)
}

// notLongBefore is at, or lateBaseline before now when at is older than
// that. Whole seconds, as the API server stores the checks' since: a
// since that differs from the stored one below the second would be a
// status write on every tick.
func notLongBefore(now, at time.Time) time.Time {
	if now.Sub(at) <= lateBaseline {
		return at
	}
	return now.Add(-lateBaseline).Truncate(time.Second)
}

// withErrors replaces the measurements a failed reading could not refresh
// with the reading's error, so that a data source down is Inconclusive
// rather than judged on stale counts. A side with no series still reads
// as no data through its zero counts.
func withErrors(ms []Measurement, service string, cfg Config, inErr, hopsErr error) []Measurement {
	if inErr != nil && !errors.Is(inErr, ErrNoData) {
		ms = slices.DeleteFunc(ms, func(m Measurement) bool { return m.Hop == "" && m.Source == "prometheus" })
		ms = append(pairChecks("", "prometheus", inErr, cfg.ErrorRate, cfg.Latency), ms...)
	} else if inErr != nil {
		for i := range ms {
			if ms[i].Hop == "" && ms[i].Source == "prometheus" && ms[i].Pair.Canary.Requests+ms[i].Pair.Stable.Requests == 0 {
				ms[i].Err = inErr
			}
		}
	}
	if hopsErr != nil && cfg.Hops {
		ms = slices.DeleteFunc(ms, func(m Measurement) bool { return m.Hop != "" && m.Source == "prometheus" })
		ms = append(ms, pairChecks(service+" → (downstream)", "prometheus", hopsErr, cfg.HopErrorRate, cfg.HopLatency)...)
	}
	return ms
}

// pairChecks makes the error-rate and latency measurements of a pair that
// could not be read.
func pairChecks(hop, source string, err error, er, lat Limit) []Measurement {
	var ms []Measurement
	if !er.Disabled {
		ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Hop: hop, Source: source, Err: err, Limit: er})
	}
	if !lat.Disabled {
		ms = append(ms, Measurement{Check: string(KindLatency), Kind: KindLatency, Hop: hop, Source: source, Err: err, Limit: lat})
	}
	return ms
}

func (r *Runner) custom(ctx context.Context, req Request, cfg Config) []Measurement {
	var ms []Measurement
	for _, cc := range cfg.Custom {
		m := Measurement{Check: cc.Name, Kind: KindCustom, Source: "prometheus", Custom: cc}
		q, err := RenderQuery(cc.Query, req.Vars)
		if err == nil {
			m.Value, err = r.o.Metrics.Scalar(ctx, q, req.Now)
		}
		m.Err = err
		ms = append(ms, m)
	}
	return ms
}

// firstTraced is where a rollout's first trace search begins: its start,
// aligned up to the trace source's grid when it has one (see
// SteppedTraceSource), so that no trace from before the start is counted.
func (r *Runner) firstTraced(start time.Time) time.Time {
	ss, ok := r.o.Traces.(SteppedTraceSource)
	if !ok || ss.Step() <= 0 {
		return start
	}
	if a := start.Truncate(ss.Step()); a.Before(start) {
		return a.Add(ss.Step())
	}
	return start
}

// observeTraces feeds the tracker the calls seen in traces since the
// previous search, which never reaches before the analysis start nor
// further back than the window.
func (r *Runner) observeTraces(ctx context.Context, st *rolloutState, req Request) error {
	until := req.Now.Add(-traceLag)
	since := st.traced
	if w := req.Now.Add(-req.Config.Window); w.After(since) {
		since = w
	}
	if !until.After(since) {
		return nil
	}
	edges, err := r.o.Traces.Edges(ctx, req.Target, since, until)
	if err != nil && !errors.Is(err, ErrNoData) {
		return err
	}
	for e, p := range edges {
		p.CanaryCalls = bounded(p.CanaryCalls, r.o.MaxCallsPerEdge)
		p.StableCalls = bounded(p.StableCalls, r.o.MaxCallsPerEdge)
		edges[e] = p
	}
	st.traced = until
	st.tracker.ObserveTraces(until, edges)
	return nil
}

// bounded keeps at most limit calls.
func bounded(calls []Call, limit int) []Call {
	if len(calls) > limit {
		return calls[:limit]
	}
	return calls
}

func traceLimit(l Limit, cfg Config) Limit {
	l.DryRun = l.DryRun || cfg.TracesDryRun
	return l
}

// forgetIdle drops the state of rollouts not analysed for a while
// (finished or deleted). The caller holds r.mu.
func (r *Runner) forgetIdle(now time.Time) {
	// Once a minute is often enough, and a scan of a thousand states on
	// every tick was a few percent of the controller's CPU.
	if now.Sub(r.swept) < time.Minute && !now.Before(r.swept) {
		return
	}
	r.swept = now
	for k, st := range r.states {
		if now.Sub(st.used) > 5*time.Minute {
			delete(r.states, k)
		}
	}
}
