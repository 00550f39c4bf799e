package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/analysis/prometheus"
)

// queryTicks is how many analysis ticks each sub-benchmark of
// BenchmarkPrometheusQueriesPerTick runs, one second apart.
const queryTicks = 5

// queriesResult is one sub-benchmark's outcome.
type queriesResult struct {
	rollouts int
	perTick  []int64 // queries sent to Prometheus on each tick
	maxTick  time.Duration
	verdicts map[analysis.Verdict]int
	real     analysis.Result // the last tick's result of the rollout with traffic
}

func (r queriesResult) average() float64 {
	var sum int64
	for _, q := range r.perTick {
		sum += q
	}
	return float64(sum) / float64(len(r.perTick))
}

// BenchmarkPrometheusQueriesPerTick analyses 1, 10 and 100 rollouts at
// once, in-process, with the real Prometheus source against the real
// Prometheus scraping the mesh simulator, and counts the queries per tick.
// The source batches: one set of shared queries (scoped to the namespaces under analysis) serves every rollout of
// a tick, so the count must not grow with the number of rollouts. Rollout
// 0 is checkout in the simulator's namespace, with 10% of its traffic on
// v2; the others are checkout in namespaces that have no traffic.
func BenchmarkPrometheusQueriesPerTick(b *testing.B) {
	e := newMeshEnv(b, benchRPS, "")
	vs := e.vs()
	vs.Spec.Http[0].Route = e.dests(90, 10)
	_, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{})
	must(b, err)
	waitMeshData(b, e.env)

	var results []queriesResult
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("rollouts=%d", n), func(b *testing.B) {
			r := measureQueries(b, e.ns, n)
			results = append(results, r)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(r.average(), "queries_per_tick")
			b.ReportMetric(float64(r.maxTick.Microseconds())/1000, "max_tick_ms")
		})
	}
	rows := make([]string, 0, len(results))
	for _, r := range results {
		verdicts := []string{}
		for _, v := range slices.Sorted(maps.Keys(r.verdicts)) {
			verdicts = append(verdicts, fmt.Sprintf("%s=%d", v, r.verdicts[v]))
		}
		rows = append(rows, fmt.Sprintf("%d\t%.1f\t%v\t%.1f\t%s\t%s\t", r.rollouts, r.average(), r.perTick,
			float64(r.maxTick.Microseconds())/1000, strings.Join(verdicts, " "), r.real.Verdict))
	}
	table(fmt.Sprintf("BenchmarkPrometheusQueriesPerTick: %d ticks 1 s apart, cache TTL 1 s, window 10 s, no traces", queryTicks),
		"rollouts\tqueries/tick\tper tick\tslowest tick (ms)\tverdicts of all ticks\trollout 0 (traffic)\t", rows)
	for _, r := range results[1:] {
		if slices.Max(r.perTick) > slices.Max(results[0].perTick) {
			b.Errorf("%d rollouts sent up to %d queries in a tick, 1 rollout %d: the queries grow with the rollouts",
				r.rollouts, slices.Max(r.perTick), slices.Max(results[0].perTick))
		}
	}
}

// benchTarget is checkout in ns, in subset mode (v2 canary, v1 stable).
func benchTarget(ns string) analysis.Target {
	h := fmt.Sprintf(host, ns)
	return analysis.Target{Namespace: ns, Service: "checkout",
		Canary: analysis.Side{Version: "v2", Host: h}, Stable: analysis.Side{Version: "v1", Host: h}}
}

func benchConfig() analysis.Config {
	cfg := analysis.DefaultConfig()
	cfg.Window = 10 * time.Second
	cfg.Traces = false
	return cfg
}

// waitMeshData waits until Prometheus has counted requests to both sides
// of checkout in e's namespace, so that rollout 0 measures real traffic.
func waitMeshData(b *testing.B, e *env) {
	src, err := prometheus.New(prometheus.Options{Address: st.PrometheusURL, CacheTTL: time.Second})
	must(b, err)
	e.eventually(90*time.Second, "checkout's v1 and v2 in Prometheus", func() (bool, string) {
		p, err := src.Inbound(e.ctx, benchTarget(e.ns), time.Now())
		if err != nil {
			return false, err.Error()
		}
		return p.Canary.Requests > 0 && p.Stable.Requests > 0, fmt.Sprintf("%+v", p)
	})
}

// measureQueries runs queryTicks ticks of n concurrent rollouts on a fresh
// source and runner, rollout 0 on ns and the others on namespaces with no
// traffic. Each tick's Now is exactly one second after the last, as the
// engine's ticks of one rollout are, so that the 1 s cache serves all the
// rollouts of a tick but never the next tick.
func measureQueries(b *testing.B, ns string, n int) queriesResult {
	src, err := prometheus.New(prometheus.Options{Address: st.PrometheusURL, CacheTTL: time.Second})
	must(b, err)
	runner := analysis.NewRunner(analysis.RunnerOptions{Metrics: src, ScrapeInterval: time.Second})
	reqs := make([]analysis.Request, n)
	for i := range reqs {
		tns := ns
		if i > 0 {
			tns = fmt.Sprintf("bench-queries-%03d", i)
		}
		reqs[i] = analysis.Request{Namespace: tns, Name: fmt.Sprintf("rollout-%03d", i), Target: benchTarget(tns), Config: benchConfig()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := queriesResult{rollouts: n, verdicts: map[analysis.Verdict]int{}}
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	start := time.Now()
	for k := range queryTicks {
		if k > 0 {
			<-ticker.C
		}
		before := src.Queries()
		t := time.Now()
		results := analyzeAll(ctx, b, runner, reqs, start.Add(time.Duration(k)*time.Second))
		out.maxTick = max(out.maxTick, time.Since(t))
		out.perTick = append(out.perTick, src.Queries()-before)
		for _, r := range results {
			out.verdicts[r.Verdict]++
		}
		out.real = results[0]
	}
	return out
}

// analyzeAll runs one tick of every request at once.
func analyzeAll(ctx context.Context, b *testing.B, r *analysis.Runner, reqs []analysis.Request, now time.Time) []analysis.Result {
	results := make([]analysis.Result, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		req.Now = now
		wg.Go(func() {
			res, err := r.Analyze(ctx, req)
			if err != nil {
				b.Errorf("analyze %s/%s: %v", req.Namespace, req.Name, err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	return results
}
