package scale

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sampleEvery is how often the sampler reads the controller's /metrics:
// half the analysis interval, and at least once a second, so that no tick
// is missed between two samples (each new value of a rollout's
// last-analysis gauge is one tick). It asks for the two families it
// reads alone (sampledMetrics): at 1,000 rollouts the whole page is
// 1.4 MB, and rendering it once a second took over a third of the
// controller's CPU that the benchmark then reported as the controller's,
// where a Prometheus scraping it every 15 s costs a fraction of that.
func sampleEvery(interval time.Duration) time.Duration { return min(interval/2, time.Second) }

// Metric names read from the controller's /metrics.
const (
	lastAnalysisMetric = "serin_rollout_last_analysis_timestamp_seconds"
	queueDepthMetric   = "workqueue_depth" // controller-runtime's, name="rollout"
	suspectsMetric     = "serin_screen_suspects_total"
)

// sampledMetrics is the query that asks the controller's /metrics for
// the sampled families alone.
var sampledMetrics = url.Values{"name[]": {lastAnalysisMetric, queueDepthMetric, suspectsMetric}}.Encode()

// sampler reads the controller's /metrics and its /proc entries every
// sampleEvery: each rollout's last-analysis gauge, whose every new value is
// one tick (its value is the tick's time), the work queue's depth, and
// the controller's RSS.
type sampler struct {
	addr string
	pid  int
	http *http.Client

	every   time.Duration // how often it samples
	mu      sync.Mutex
	ticks   map[string][]float64 // rollout → distinct gauge values, in the order seen
	depth   []timed              // work queue depth
	rss     []timed              // bytes
	fails   int                  // samples that failed
	lastErr string
	// suspects is the latest count of rollouts the screen between ticks
	// named (see rollout/screen.go).
	suspects float64
}

// timed is one sampled value.
type timed struct {
	at time.Time
	v  float64
}

// sample starts the sampler; it stops with ctx.
func (w *world) sample(ctx context.Context) *sampler {
	s := &sampler{addr: w.ctrlAddr, pid: w.ctrl.PID(), http: &http.Client{Timeout: 2 * time.Second},
		ticks: map[string][]float64{}, every: sampleEvery(w.interval)}
	go func() {
		tick := time.NewTicker(s.every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.once(ctx)
			}
		}
	}()
	return s
}

func (s *sampler) once(ctx context.Context) {
	at := time.Now()
	fams, err := scrape(ctx, s.http, "http://"+s.addr+"/metrics?"+sampledMetrics)
	var rss int64
	if err == nil {
		rss, err = readRSS(s.pid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.fails++
		s.lastErr = err.Error()
		return
	}
	s.rss = append(s.rss, timed{at, float64(rss)})
	if f := fams[queueDepthMetric]; f != nil {
		for _, m := range f.GetMetric() {
			if label(m, "name") == "rollout" {
				s.depth = append(s.depth, timed{at, m.GetGauge().GetValue()})
			}
		}
	}
	if f := fams[suspectsMetric]; f != nil {
		for _, m := range f.GetMetric() {
			s.suspects = m.GetCounter().GetValue()
		}
	}
	if f := fams[lastAnalysisMetric]; f != nil {
		for _, m := range f.GetMetric() {
			name, v := label(m, "rollout"), m.GetGauge().GetValue()
			if ts := s.ticks[name]; len(ts) == 0 || ts[len(ts)-1] != v {
				s.ticks[name] = append(ts, v)
			}
		}
	}
}

// screened is how many suspects the screen has named so far.
func (s *sampler) screened() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.suspects
}

// ticksOf returns the tick times of a rollout, sorted.
func (s *sampler) ticksOf(name string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return toTimes(s.ticks[name])
}

// allTicks returns every rollout's tick times, sorted.
func (s *sampler) allTicks() map[string][]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]time.Time, len(s.ticks))
	for name, vs := range s.ticks {
		out[name] = toTimes(vs)
	}
	return out
}

// analysedOnce counts the rollouts with at least one tick.
func (s *sampler) analysedOnce() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ticks)
}

func toTimes(vs []float64) []time.Time {
	out := make([]time.Time, len(vs))
	for i, v := range vs {
		out[i] = time.Unix(0, int64(v*1e9))
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.Compact(out)
}

// in returns the sampled values taken in [from, to].
func in(samples []timed, from, to time.Time) []float64 {
	var out []float64
	for _, s := range samples {
		if !s.at.Before(from) && !s.at.After(to) {
			out = append(out, s.v)
		}
	}
	return out
}

// depthIn and rssIn return the samples of [from, to].
func (s *sampler) depthIn(from, to time.Time) []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return in(s.depth, from, to)
}

func (s *sampler) rssIn(from, to time.Time) []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return in(s.rss, from, to)
}

func (s *sampler) failures() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fails, s.lastErr
}

// scrape GETs a /metrics page and parses it.
func scrape(ctx context.Context, c *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return fams, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go runs on.
const clockTicks = 100

// readCPU returns the CPU time (user and system) a process has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command, which may hold spaces, in parentheses:
	// state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// readRSS returns a process's resident set size in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status VmRSS %q: %w", pid, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// promQueries returns how many queries Prometheus has evaluated, from its
// own /metrics (read over HTTP, which is no query):
// prometheus_engine_query_duration_seconds_count{slice="inner_eval"}.
// serin does not count its queries on its /metrics, so this is the count;
// during a window nothing but serin queries this Prometheus.
func promQueries(ctx context.Context) (float64, error) {
	fams, err := scrape(ctx, http.DefaultClient, st.PrometheusURL+"/metrics")
	if err != nil {
		return 0, err
	}
	f := fams["prometheus_engine_query_duration_seconds"]
	if f == nil {
		return 0, fmt.Errorf("Prometheus's /metrics has no prometheus_engine_query_duration_seconds")
	}
	for _, m := range f.GetMetric() {
		if label(m, "slice") == "inner_eval" {
			return float64(m.GetSummary().GetSampleCount()), nil
		}
	}
	return 0, fmt.Errorf("Prometheus's /metrics has no inner_eval slice of prometheus_engine_query_duration_seconds")
}

// promScalar evaluates a query that returns one number.
func promScalar(ctx context.Context, q string) (float64, error) {
	c, err := promapi.NewClient(promapi.Config{Address: st.PrometheusURL})
	if err != nil {
		return 0, err
	}
	v, _, _, err := promv1.NewAPI(c).Query(ctx, q, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) == 0 {
		return 0, nil
	}
	return float64(vec[0].Value), nil
}
