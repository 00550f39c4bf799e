package analysis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"text/template"
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
// Analyzer.
type Runner struct {
	o      RunnerOptions
	mu     sync.Mutex
	traces map[string]*traceWindow // by namespace/name
}

// NewRunner returns a Runner.
func NewRunner(o RunnerOptions) *Runner {
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = 15 * time.Second
	}
	if o.MaxCallsPerEdge <= 0 {
		o.MaxCallsPerEdge = 5000
	}
	return &Runner{o: o, traces: map[string]*traceWindow{}}
}

// Analyze measures and judges one tick of req.
func (r *Runner) Analyze(ctx context.Context, req Request) (Result, error) {
	cfg := req.Config
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	// A window must hold at least two scrapes for rate() and increase().
	cfg.Window = max(cfg.Window, 2*r.o.ScrapeInterval)
	cfg.FastWindow = max(cfg.FastWindow, 2*r.o.ScrapeInterval+r.o.ScrapeInterval/2)
	var ms []Measurement
	if r.o.Metrics == nil {
		ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Source: "prometheus",
			Err: fmt.Errorf("no metrics source is configured: %w", ErrUnavailable)})
	} else {
		ms = append(ms, r.metrics(ctx, req.Target, cfg, req.Now)...)
		ms = append(ms, r.custom(ctx, req, cfg)...)
	}
	if r.o.Traces != nil && cfg.Traces {
		ms = append(ms, r.traceChecks(ctx, req, cfg)...)
	}
	return Evaluate(ms, cfg), nil
}

func (r *Runner) metrics(ctx context.Context, t Target, cfg Config, now time.Time) []Measurement {
	var ms []Measurement
	in, err := r.o.Metrics.Inbound(ctx, t, cfg.Window, now)
	ms = append(ms, pairChecks("", "prometheus", in, err, cfg.ErrorRate, cfg.Latency, "")...)
	fast, ferr := r.o.Metrics.Inbound(ctx, t, cfg.FastWindow, now)
	if !cfg.ErrorRate.Disabled {
		ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Source: "prometheus",
			Pair: fast, Err: ferr, Limit: cfg.ErrorRate, Fast: true})
	}
	if !cfg.Hops {
		return ms
	}
	hops, err := r.o.Metrics.Hops(ctx, t, cfg.Window, now)
	if err != nil {
		return append(ms, pairChecks(t.Service+" → (downstream)", "prometheus", Pair{}, err, cfg.HopErrorRate, cfg.HopLatency, "")...)
	}
	fastHops, _ := r.o.Metrics.Hops(ctx, t, cfg.FastWindow, now)
	for _, called := range slices.Sorted(maps.Keys(hops)) {
		hop := t.Service + " → " + called
		ms = append(ms, pairChecks(hop, "prometheus", hops[called], nil, cfg.HopErrorRate, cfg.HopLatency, "")...)
		if fp, ok := fastHops[called]; ok && !cfg.HopErrorRate.Disabled {
			ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Hop: hop, Source: "prometheus",
				Pair: fp, Limit: cfg.HopErrorRate, Fast: true})
		}
	}
	return ms
}

// pairChecks makes the error-rate and latency measurements of one pair.
func pairChecks(hop, source string, p Pair, err error, er, lat Limit, traceID string) []Measurement {
	var ms []Measurement
	if !er.Disabled {
		ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Hop: hop, Source: source, Pair: p, Err: err, Limit: er, TraceID: traceID})
	}
	if !lat.Disabled {
		ms = append(ms, Measurement{Check: string(KindLatency), Kind: KindLatency, Hop: hop, Source: source, Pair: p, Err: err, Limit: lat, TraceID: traceID})
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

// RenderQuery fills a custom query's {{ .Var }} placeholders. A reference
// to an unknown variable is an error naming it.
func RenderQuery(query string, vars map[string]string) (string, error) {
	tpl, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", fmt.Errorf("custom query %q: %w", query, err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("custom query %q: %w", query, err)
	}
	return b.String(), nil
}

// traceWindow keeps the trace calls of one rollout over the analysis
// window, so that each tick fetches only the spans since the last one. The
// engine analyses one rollout at a time, so a window is never used by two
// ticks at once.
type traceWindow struct {
	last  time.Time
	used  time.Time
	calls map[Edge]*edgeCalls
	trace map[Edge]string
}

type edgeCalls struct{ canary, stable []timedCall }

type timedCall struct {
	Call
	at time.Time
}

func (r *Runner) traceChecks(ctx context.Context, req Request, cfg Config) []Measurement {
	key := req.Namespace + "/" + req.Name
	r.mu.Lock()
	tw := r.traces[key]
	if tw == nil {
		tw = &traceWindow{calls: map[Edge]*edgeCalls{}, trace: map[Edge]string{}}
		r.traces[key] = tw
	}
	r.forgetIdle(req.Now)
	r.mu.Unlock()

	since := req.Now.Add(-cfg.Window)
	if tw.last.After(since) {
		since = tw.last
	}
	edges, err := r.o.Traces.Edges(ctx, req.Target, since, req.Now)
	if err != nil && !errors.Is(err, ErrNoData) {
		return pairChecks(req.Target.Service+" (traces)", "jaeger", Pair{}, err, traceLimit(cfg.HopErrorRate, cfg), traceLimit(cfg.HopLatency, cfg), "")
	}
	tw.add(edges, req.Now, r.o.MaxCallsPerEdge)
	tw.evict(req.Now.Add(-cfg.Window))
	tw.last, tw.used = req.Now, req.Now
	var ms []Measurement
	for _, e := range slices.SortedFunc(maps.Keys(tw.calls), func(a, b Edge) int {
		return strings.Compare(a.From+" "+a.To, b.From+" "+b.To)
	}) {
		ec := tw.calls[e]
		p := Pair{Canary: summarize(ec.canary), Stable: summarize(ec.stable)}
		ms = append(ms, pairChecks(e.From+" → "+e.To, "jaeger", p, nil, traceLimit(cfg.HopErrorRate, cfg), traceLimit(cfg.HopLatency, cfg), tw.trace[e])...)
	}
	if len(ms) == 0 {
		ms = pairChecks(req.Target.Service+" (traces)", "jaeger", Pair{}, fmt.Errorf("no traces through %s in the last %v: %w", req.Target.Service, cfg.Window, ErrNoData),
			traceLimit(cfg.HopErrorRate, cfg), traceLimit(cfg.HopLatency, cfg), "")
	}
	return ms
}

func traceLimit(l Limit, cfg Config) Limit {
	l.DryRun = l.DryRun || cfg.TracesDryRun
	return l
}

// forgetIdle drops the trace windows of rollouts not analysed for a while
// (finished or deleted). The caller holds r.mu.
func (r *Runner) forgetIdle(now time.Time) {
	for k, tw := range r.traces {
		if !tw.used.IsZero() && now.Sub(tw.used) > 5*time.Minute {
			delete(r.traces, k)
		}
	}
}

func (tw *traceWindow) add(edges map[Edge]EdgePair, at time.Time, limit int) {
	for e, p := range edges {
		ec := tw.calls[e]
		if ec == nil {
			ec = &edgeCalls{}
			tw.calls[e] = ec
		}
		ec.canary = appendBounded(ec.canary, p.CanaryCalls, at, limit)
		ec.stable = appendBounded(ec.stable, p.StableCalls, at, limit)
		if p.CanaryTraceID != "" {
			tw.trace[e] = p.CanaryTraceID
		}
	}
}

func appendBounded(dst []timedCall, calls []Call, at time.Time, limit int) []timedCall {
	for _, c := range calls {
		dst = append(dst, timedCall{Call: c, at: at})
	}
	if n := len(dst); n > limit {
		dst = append([]timedCall(nil), dst[n-limit:]...)
	}
	return dst
}

func (tw *traceWindow) evict(before time.Time) {
	for e, ec := range tw.calls {
		ec.canary = slices.DeleteFunc(ec.canary, func(c timedCall) bool { return c.at.Before(before) })
		ec.stable = slices.DeleteFunc(ec.stable, func(c timedCall) bool { return c.at.Before(before) })
		if len(ec.canary) == 0 && len(ec.stable) == 0 {
			delete(tw.calls, e)
			delete(tw.trace, e)
		}
	}
}

// summarize turns calls into Stats with the nearest-rank p99.
func summarize(calls []timedCall) Stats {
	s := Stats{Requests: float64(len(calls)), P99Ms: math.NaN()}
	if len(calls) == 0 {
		return s
	}
	d := make([]float64, len(calls))
	for i, c := range calls {
		d[i] = c.Ms
		if c.Failed {
			s.Errors++
		}
	}
	slices.Sort(d)
	rank := int(math.Ceil(0.99 * float64(len(d))))
	s.P99Ms = d[max(rank, 1)-1]
	s.Latencies = d
	return s
}
