package scale

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// benchConfig is BenchmarkScale's configuration, from the environment
// (make bench-scale passes SCALE_NS through). A value that does not parse
// stops the benchmark, naming the variable.
type benchConfig struct {
	ns           []int         // SCALE_NS: the rollout counts, default 1,50,1000
	rps          float64       // SCALE_RPS: requests per second per service, default 200
	interval     time.Duration // SCALE_INTERVAL: every rollout's analysis interval, default 2s
	window       time.Duration // SCALE_WINDOW: the measurement window, default 30s
	trials       int           // SCALE_TRIALS: rollbacks timed per N, default 3
	trialTimeout time.Duration // SCALE_TRIAL_TIMEOUT: bound on each, default 3m
	startTimeout time.Duration // SCALE_START_TIMEOUT: bound on all N reaching their first step, default 5m
	listRequests int           // list API requests timed per N
}

func benchConfigFromEnv() (benchConfig, error) {
	c := benchConfig{ns: []int{1, 50, 1000}, rps: 200, interval: 2 * time.Second, window: 30 * time.Second,
		trials: 3, trialTimeout: 3 * time.Minute, startTimeout: 5 * time.Minute, listRequests: 200}
	if v := os.Getenv("SCALE_NS"); v != "" {
		c.ns = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 5000 {
				return c, fmt.Errorf("SCALE_NS=%q: %q is not a rollout count from 1 to 5000", v, f)
			}
			c.ns = append(c.ns, n)
		}
	}
	if v := os.Getenv("SCALE_RPS"); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || !(x > 0 && x <= 10_000) {
			return c, fmt.Errorf("SCALE_RPS=%q: not a rate in (0, 10000]", v)
		}
		c.rps = x
	}
	if v := os.Getenv("SCALE_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			return c, fmt.Errorf("SCALE_TRIALS=%q: not a count from 1 to 20", v)
		}
		c.trials = n
	}
	for _, d := range []struct {
		name string
		min  time.Duration
		dst  *time.Duration
	}{{"SCALE_INTERVAL", time.Second, &c.interval}, {"SCALE_WINDOW", time.Second, &c.window},
		{"SCALE_TRIAL_TIMEOUT", time.Second, &c.trialTimeout}, {"SCALE_START_TIMEOUT", time.Second, &c.startTimeout}} {
		v := os.Getenv(d.name)
		if v == "" {
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x < d.min {
			return c, fmt.Errorf("%s=%q: not a duration of at least %v", d.name, v, d.min)
		}
		*d.dst = x
	}
	return c, nil
}

// row is one N's line of the table.
type row struct {
	n       int
	start   startup
	steady  steady
	list    []float64
	listLen int
	trials  []rollback
	// suspects is how many rollouts the screen named, over the run.
	suspects float64
}

// BenchmarkScale runs, for each N of SCALE_NS, N rollouts in progress on
// the real stack and prints one table: the controller's CPU and RSS,
// Prometheus queries per tick, API-server writes per second, the time
// until all N are at their first step, the tick interval, the work queue
// depth, the list API's latency, and the headline: with N in progress, a
// canary given 50% errors, timed from the fault to its VirtualService at
// 0%, three times. Targets (issue 11) are printed beside, not asserted.
func BenchmarkScale(b *testing.B) {
	cfg, err := benchConfigFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	var rows []row
	for _, n := range cfg.ns {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			r := benchOne(b, cfg, n)
			rows = append(rows, r)
			b.ReportMetric(0, "ns/op") // the wall time of the whole run says nothing
			b.ReportMetric(r.steady.cpuCores, "cores")
			b.ReportMetric(r.steady.rssMiB, "rss_MiB")
			b.ReportMetric(r.steady.queriesPerTick(), "queries/tick")
			b.ReportMetric(r.steady.writesPerSecond(), "writes/s")
			b.ReportMetric(percentile(r.steady.intervals, 50), "tick_p50_s")
			b.ReportMetric(percentile(r.steady.intervals, 99), "tick_p99_s")
			b.ReportMetric(1000*percentile(r.list, 99), "list_p99_ms")
			b.ReportMetric(medianRollback(r.trials), "rollback_p50_s")
		})
	}
	printTable(os.Stdout, cfg, rows)
}

// benchOne measures one N.
func benchOne(b *testing.B, cfg benchConfig, n int) row {
	budget := cfg.startTimeout + cfg.window + time.Duration(cfg.trials)*2*cfg.trialTimeout + 10*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	r := start(b, ctx, n, cfg.rps, cfg.interval)
	out := row{n: n}
	out.start = r.waitStarted(cfg.startTimeout)
	out.steady = r.measure(cfg.window)
	out.list, out.listLen = r.listTimes(cfg.listRequests)
	out.trials = r.trials(cfg.trials, cfg.trialTimeout)
	out.suspects = r.smp.screened()
	if fails, last := r.smp.failures(); fails > 0 {
		logf(b, "%d samples of the controller's /metrics failed (last: %s)", fails, last)
	}
	return out
}

// medianRollback is the median fault → 0% of the trials that rolled back,
// NaN if none did.
func medianRollback(rbs []rollback) float64 {
	var xs []float64
	for _, rb := range rbs {
		if rb.done {
			xs = append(xs, rb.latency.Seconds())
		}
	}
	return percentile(xs, 50)
}

func printTable(out *os.File, cfg benchConfig, rows []row) {
	fmt.Fprintf(out, "\nBenchmarkScale: N rollouts in progress on one controller, the real local stack, %.0f rps per service (10%% to each canary), "+
		"analysis every %v, window %v, scrape 1 s, controller memory limit %s\n", cfg.rps, cfg.interval, cfg.window, memoryLimit())
	if extra := os.Getenv("SCALE_CONTROLLER_ARGS"); extra != "" {
		fmt.Fprintf(out, "controller flags added (SCALE_CONTROLLER_ARGS): %s\n", extra)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tat first step (s)\tanalysed once (s)\tCPU (cores)\tRSS (MiB)\tPrometheus/harness CPU\tqueries/tick\twrites/s\t"+
		"tick p50 (s)\ttick p99 (s)\tqueue avg/max\tlist p50/p99 (ms)\tlist KB\tfault → 0% (s), ticks\t")
	for _, r := range rows {
		s := r.steady
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%.0f\t%.2f/%.2f\t%.1f\t%.1f\t%s\t%s\t%.1f/%.0f\t%.1f/%.1f\t%.1f\t%s\t\n",
			r.n, partial(r.start.atFirstStep, r.n, r.start.firstStep), partial(r.start.analysedOnce, r.n, r.start.firstTick),
			s.cpuCores, s.rssMiB, s.promCPUCores, s.harnessCores, s.queriesPerTick(), s.writesPerSecond(),
			orDash(percentile(s.intervals, 50)), orDash(percentile(s.intervals, 99)), mean(s.depth), maxOf(s.depth),
			1000*percentile(r.list, 50), 1000*percentile(r.list, 99), float64(r.listLen)/1024, trialCells(r.trials))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "targets at N = 1,000: ≤ 0.5 core, ≤ 256 MiB, queries/tick as at N = 1, tick p99 ≤ %.1f s (1.1 × %v), "+
		"writes ≤ 200/s, list p99 ≤ 5 ms, fault → 0%% within 1 s of N = 1\n", 1.1*cfg.interval.Seconds(), cfg.interval)
	fmt.Fprintln(out, "writes: Rollout, VirtualService and Event versions seen on the API server's watch in the window; "+
		"queries: Prometheus's inner_eval count over the ticks of the window; list: GET /api/v1/rollouts (first page)")
	for _, r := range rows {
		s := r.steady
		fmt.Fprintf(out, "N=%d: %d ticks and %.0f queries in %.1f s; writes %d Rollout, %d VirtualService, %d Event; peak RSS %.0f MiB; the screen named %.0f suspects over the run\n",
			r.n, s.ticks, s.queries, s.window.Seconds(), s.rolloutWrites, s.vsWrites, s.eventWrites, s.peakMiB, r.suspects)
		for _, rb := range r.trials {
			if rb.note != "" {
				fmt.Fprintf(out, "N=%d: %s: %s\n", r.n, rb.rollout, rb.note)
			}
		}
	}
}

// partial renders "12.3", or "906/1000 in 300.0" when not all got there.
func partial(got, n int, d time.Duration) string {
	if got == n {
		return fmt.Sprintf("%.1f", d.Seconds())
	}
	return fmt.Sprintf("%d/%d by %.0f", got, n, d.Seconds())
}

// trialCells renders each trial as "2.1 (1)", or "> 180 (90)" when it
// did not roll back in time.
func trialCells(rbs []rollback) string {
	cells := make([]string, 0, len(rbs))
	for _, rb := range rbs {
		switch {
		case rb.done:
			cells = append(cells, fmt.Sprintf("%.1f (%d)", rb.latency.Seconds(), rb.ticks))
		case rb.latency > 0:
			cells = append(cells, fmt.Sprintf("> %.0f (%d)", rb.latency.Seconds(), rb.ticks))
		default:
			cells = append(cells, "not ready")
		}
	}
	return strings.Join(cells, ", ")
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// orDash renders x with two decimals, or "–" when there is none (NaN: no
// rollout ticked twice in the window).
func orDash(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f", x)
}

// memoryLimit describes the memory limit the controller runs with: the
// SERIN_MEMORY_LIMIT it inherits (make bench-scale passes the one
// deploy/deployment.yaml sets), or none.
func memoryLimit() string {
	v := os.Getenv("SERIN_MEMORY_LIMIT")
	n, err := strconv.ParseInt(v, 10, 64)
	if v == "" || err != nil {
		return "none"
	}
	return fmt.Sprintf("%d MiB (SERIN_MEMORY_LIMIT; Go's soft limit at 90%%)", n>>20)
}
