package e2e

// The benchmarks of the Analysis issue, run by `make bench`. They measure
// against the same real stack as the tests (kube-apiserver, Prometheus,
// Jaeger, the mesh simulator and the serin binary) and print their figures
// twice: as b.ReportMetric units on the benchmark's line and as a small
// table above it. Timings are reported, never asserted; only correctness
// (a healthy canary must not be rolled back) fails a benchmark.

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// benchRuns is how many canaries the rollout benchmarks run, whatever
// b.N is: each is a whole rollout of tens of seconds, so `make bench` runs
// them with -benchtime 1x and this fixed count gives the percentiles.
const benchRuns = 10

// benchRPS is the simulator's load per namespace. Only one simulator runs
// at a time, so the load on loopback stays at this rate.
const benchRPS = 50

// runScope is a testing.TB whose Cleanups run when close is called rather
// than when the benchmark ends, so that each run's simulator, watch and
// controller are stopped before the next run starts. Everything else
// (failures, logs, TempDir) goes to the benchmark.
type runScope struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func newRunScope(tb testing.TB) *runScope { return &runScope{TB: tb} }

// Cleanup registers f to run at close, last registered first.
func (s *runScope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// close runs the cleanups. Call it deferred, so that it also runs when the
// run fails with Fatal.
func (s *runScope) close() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

// percentile is the nearest-rank percentile of xs (p in (0,100]): with 10
// samples p95 is the largest. NaN when xs is empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// table prints tab-separated rows, for `make bench` to show. Every column
// is right-aligned but the last, which is left as it is: end the rows with
// a tab when the last column is a number too, not when it is text.
func table(title string, header string, rows []string) {
	fmt.Printf("\n%s\n", title)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, r)
	}
	_ = w.Flush()
	fmt.Println()
}

// ctrlMetrics are the controller's own rollback figures from its /metrics.
type ctrlMetrics struct {
	rollbacks float64
	count     float64            // detection histogram observations
	sum       float64            // their sum, in seconds
	buckets   map[string]float64 // cumulative counts by le
}

const detectionMetric = "serin_rollback_detection_to_rollback_seconds"

// scrapeController reads the rollback counter and the detection histogram
// from a controller's /metrics.
func scrapeController(addr string) (ctrlMetrics, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ctrlMetrics{}, fmt.Errorf("controller /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ctrlMetrics{}, fmt.Errorf("controller /metrics: %s", resp.Status)
	}
	return parseCtrlMetrics(resp.Body)
}

func parseCtrlMetrics(r io.Reader) (ctrlMetrics, error) {
	m := ctrlMetrics{buckets: map[string]float64{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "serin_rollbacks_total" || strings.HasPrefix(name, "serin_rollbacks_total{"):
			m.rollbacks += v // by reason
		case name == detectionMetric+"_sum":
			m.sum = v
		case name == detectionMetric+"_count":
			m.count = v
		case strings.HasPrefix(name, detectionMetric+`_bucket{le="`):
			m.buckets[strings.TrimSuffix(strings.TrimPrefix(name, detectionMetric+`_bucket{le="`), `"}`)] = v
		}
	}
	return m, sc.Err()
}

// add sums two controllers' figures: one controller runs per namespace, so
// the histogram of all runs is the sum of theirs.
func (m *ctrlMetrics) add(o ctrlMetrics) {
	if m.buckets == nil {
		m.buckets = map[string]float64{}
	}
	m.rollbacks += o.rollbacks
	m.count += o.count
	m.sum += o.sum
	for le, v := range o.buckets {
		m.buckets[le] += v
	}
}

// print shows the summed histogram as a table of cumulative buckets.
func (m ctrlMetrics) print() {
	les := make([]string, 0, len(m.buckets))
	for le := range m.buckets {
		les = append(les, le)
	}
	slices.SortFunc(les, func(a, b string) int {
		fa, _ := strconv.ParseFloat(a, 64) // "+Inf" parses too
		fb, _ := strconv.ParseFloat(b, 64)
		return cmp.Compare(fa, fb)
	})
	rows := []string{}
	for _, le := range les {
		rows = append(rows, fmt.Sprintf("%s\t%.0f\t", le, m.buckets[le]))
	}
	mean := math.NaN()
	if m.count > 0 {
		mean = m.sum / m.count
	}
	table(fmt.Sprintf("controller /metrics, summed over the runs: serin_rollbacks_total %.0f, %s count %.0f, sum %.2fs, mean %.2fs",
		m.rollbacks, detectionMetric, m.count, m.sum, mean), "le (s)\tcumulative\t", rows)
}

// seconds formats a duration for the tables.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
