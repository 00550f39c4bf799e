package meshsim

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Integration tests on the real local stack: kube-apiserver with the real
// Istio CRDs, Prometheus scraping the simulator every second, and Jaeger
// receiving its spans. Each test uses its own namespace, so that their
// metrics and routes stay apart.

// share is n's fraction of the counts.
func share(counts map[string]int, key string) float64 {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(counts[key]) / float64(total)
}

func TestStackSplitFollowsVirtualService(t *testing.T) {
	if err := st.ApplyYAML(t.Context(), filepath.Join("testdata", "shop.yaml")); err != nil {
		t.Fatalf("apply testdata/shop.yaml: %v", err)
	}
	t.Cleanup(func() { updateWeights(t, "shop", 75, 25) }) // leave the file's state for a rerun
	s := startMesh(t, "shop", 0)

	counts, err := s.Fire(t.Context(), 2000)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if got := share(counts, "v2"); got < 0.22 || got > 0.28 {
		t.Fatalf("at weights 75/25 the canary served %.1f%% of 2000 (%v), want 25±3%%", 100*got, counts)
	}
	t.Logf("75/25: %v", counts)

	// The new weights must apply within a second of the update; the check
	// polls with small batches until that deadline.
	for _, w := range []struct{ v1, v2 int32 }{{0, 100}, {100, 0}} {
		updateWeights(t, "shop", w.v1, w.v2)
		updated := time.Now()
		want := "v2"
		if w.v2 == 0 {
			want = "v1"
		}
		for {
			batch, err := s.Fire(t.Context(), 10)
			if err != nil {
				t.Fatalf("Fire: %v", err)
			}
			if batch[want] == 10 {
				t.Logf("weights %d/%d seen within %v", w.v1, w.v2, time.Since(updated).Round(time.Millisecond))
				break
			}
			if time.Since(updated) > time.Second {
				t.Fatalf("weights %d/%d: a batch after 1s still went %v", w.v1, w.v2, batch)
			}
		}
	}

	updateWeights(t, "shop", 50, 50)
	time.Sleep(100 * time.Millisecond) // well past the watch delay measured above
	if counts, err = s.Fire(t.Context(), 600); err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if got := share(counts, "v2"); got < 0.47 || got > 0.53 {
		t.Errorf("at weights 50/50 the canary served %.1f%% of 600 (%v), want 50±3%%", 100*got, counts)
	}
}

// Istio-style queries, as serin's analysis would write them.
const (
	errorRateQuery = `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%[1]s",destination_workload="%[2]s",response_code=~"5.."}[30s]))` +
		` / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%[1]s",destination_workload="%[2]s"}[30s]))`
	errorRateOrZeroQuery = `(sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%[1]s",destination_workload="%[2]s",response_code=~"5.."}[30s])) or vector(0))` +
		` / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%[1]s",destination_workload="%[2]s"}[30s]))`
	inboundP99Query = `histogram_quantile(0.99, sum by (le)(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="%s",destination_workload="%s"}[30s])))`
	hopP99Query     = `histogram_quantile(0.99, sum by (le)(rate(istio_request_duration_milliseconds_bucket{reporter="source",source_workload_namespace="%s",source_workload="%s",destination_service_name="%s"}[30s])))`
	hopRateQuery    = `sum(rate(istio_requests_total{reporter="source",source_workload_namespace="%s",source_workload="%s",destination_service_name="%s"}[30s]))`
	inboundRate     = `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="%s",destination_workload="%s"}[30s]))`
)

func TestStackPrometheusSeesInjectedFaults(t *testing.T) {
	const ns = "shop-faults"
	createNamespace(t, ns)
	createCanaryRouting(t, ns, 50, 50)
	s := startMesh(t, ns, 0)
	if err := s.SetFault(Checkout, "v2", Fault{ErrorRate: 0.2, LatencyMs: 300, LatencyJitterMs: 50}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	s.SetRPS(100) // 50 rps to each version; the fault applies from the first request
	// Errors are drawn at random per request, so the rate over n requests
	// has a binomial spread: at 0.2 and n ≥ 1000 its standard deviation is
	// at most 0.0127, and 0.2±0.05 is four of them.
	waitForRequests(t, ns, "checkout-v2", 1000)

	rate := queryIn(t, fmt.Sprintf(errorRateQuery, ns, "checkout-v2"), 0.15, 0.25)
	p99v2 := queryIn(t, fmt.Sprintf(inboundP99Query, ns, "checkout-v2"), 250, 500)
	p99v1 := queryIn(t, fmt.Sprintf(inboundP99Query, ns, "checkout-v1"), 0, 100)
	// checkout-v1 has no 5xx series at all, so the query needs its zero.
	queryIn(t, fmt.Sprintf(errorRateOrZeroQuery, ns, "checkout-v1"), 0, 0)
	t.Logf("checkout-v2 error rate %.4f, p99 %.0f ms; checkout-v1 p99 %.1f ms", rate, p99v2, p99v1)
}

func TestStackAmplificationShowsOnTheNextHop(t *testing.T) {
	const ns = "shop-amp"
	createNamespace(t, ns)
	createCanaryRouting(t, ns, 50, 50)
	s := startMesh(t, ns, 0)
	if err := s.SetFault(Checkout, "v2", Fault{DownstreamCalls: 3, DownstreamLatencyMs: 200}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	s.SetRPS(100)
	waitForRequests(t, ns, "checkout-v2", 300)

	hopV2 := queryIn(t, fmt.Sprintf(hopP99Query, ns, "checkout-v2", Payments), 200, 500)
	hopV1 := queryIn(t, fmt.Sprintf(hopP99Query, ns, "checkout-v1", Payments), 0, 50)
	inV2 := queryIn(t, fmt.Sprintf(inboundP99Query, ns, "checkout-v2"), 0, 50)
	calls := queryIn(t, fmt.Sprintf(hopRateQuery, ns, "checkout-v2", Payments), 1, MaxRPS)
	in := queryIn(t, fmt.Sprintf(inboundRate, ns, "checkout-v2"), 1, MaxRPS)
	if ratio := calls / in; ratio < 2.7 || ratio > 3.3 {
		t.Errorf("checkout-v2 makes %.2f payments calls per request, want 3±0.3", ratio)
	}
	t.Logf("p99 checkout-v2→payments %.0f ms, checkout-v1→payments %.1f ms, checkout-v2 inbound %.1f ms; %.2f calls/request",
		hopV2, hopV1, inV2, calls/in)
}

// waitForRequests waits until Prometheus holds at least n requests to
// workload in the last 30 s, so that the rates and quantiles that follow
// rest on enough samples to be asserted once rather than polled for.
func waitForRequests(t *testing.T, ns, workload string, n float64) {
	t.Helper()
	q := fmt.Sprintf(`sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="%s",destination_workload="%s"}[30s]))`,
		ns, workload)
	var got float64
	eventually(t, 45*time.Second, fmt.Sprintf("%v requests to %s in Prometheus", n, workload),
		queryBetween(t.Context(), q, n, math.Inf(1), &got))
}

// queryIn runs q once and fails unless its value lies in [lo, hi].
func queryIn(t *testing.T, q string, lo, hi float64) float64 {
	t.Helper()
	v, err := promQuery(t.Context(), q)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if v < lo || v > hi {
		t.Errorf("%s = %g, want [%g, %g]", q, v, lo, hi)
	}
	return v
}

func TestStackCloseStopsEverything(t *testing.T) {
	const ns = "shop-close"
	createNamespace(t, ns)
	before := runtime.NumGoroutine()
	s, err := Start(t.Context(), Options{Namespace: ns, RESTConfig: st.RESTConfig(),
		OTLPEndpoint: st.OTLPHTTPEndpoint, RPS: 100})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.SetFault(Checkout, "v1", Fault{DownstreamCalls: 2, DownstreamLatencyMs: 300}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // load, amplified calls, spans and the watch all busy
	addrs := append([]string{s.MetricsAddr(), strings.TrimPrefix(s.ControlURL(), "http://")}, mapValues(s.WorkloadAddrs())...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes besides the stack's: %v", kids)
	}
}

// childProcesses lists the PIDs whose parent is this process, leaving out
// the stack's own.
func childProcesses(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	self := os.Getpid()
	stackPIDs := st.PIDs()
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(stackPIDs, pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The fields after the command name, which is in parentheses: state, ppid, ...
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(self) {
			kids = append(kids, pid)
		}
	}
	return kids
}
