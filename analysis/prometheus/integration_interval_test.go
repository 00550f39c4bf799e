package prometheus

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// This file sorts before integration_test.go so that its test runs first:
// TestRealPrometheus stops the stack's Prometheus at its end.

// TestScrapeIntervalOnRealPrometheus learns the stack's 1s scrape interval
// from a real Prometheus, through the __scrape_interval__ label of the
// job that exports istio_requests_total and through the configuration
// that older servers are read from, and checks that the deployment's
// --scrape-interval=15s is reported as disagreeing.
func TestScrapeIntervalOnRealPrometheus(t *testing.T) {
	if promStopped {
		t.Fatal("the stack's Prometheus was stopped by an earlier test: run with -count=1")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// One series of Istio's request metric, in a namespace of its own so
	// that it adds nothing to what TestRealPrometheus measures.
	reg := promclient.NewRegistry()
	requests := promclient.NewCounterVec(promclient.CounterOpts{Name: "istio_requests_total", Help: "Requests."},
		[]string{"reporter", "destination_service_namespace"})
	reg.MustRegister(requests)
	requests.WithLabelValues("destination", "serin-interval-test").Inc()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	const job = "istio-interval"
	if err := st.SetScrapeTargets(job, []string{srv.Listener.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.SetScrapeTargets(job, nil) }()

	s, err := New(Options{Address: st.PrometheusURL})
	if err != nil {
		t.Fatal(err)
	}
	var got Interval
	for !got.Istio || !strings.Contains(strings.Join(got.Jobs, ","), job) {
		// Until Prometheus has read the target and scraped it once, there
		// are no targets (ErrNoData) or no Istio series.
		got, err = s.ScrapeInterval(ctx)
		t.Logf("ScrapeInterval = %+v, %v", got, err)
		select {
		case <-ctx.Done():
			t.Fatalf("no Istio job %s among the targets before the deadline (last: %+v, %v)", job, got, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if got.Every != time.Second || got.Targets != 1 || len(got.Jobs) != 1 {
		t.Errorf("ScrapeInterval = %+v, want every 1s from the one target of job %s", got, job)
	}
	if w := IntervalMismatch(15*time.Second, got); !strings.Contains(w, "15s, but Prometheus scrapes every 1s") {
		t.Errorf("IntervalMismatch(15s, %+v) = %q, want a warning naming 15s and 1s", got, w)
	}
	cfg, err := s.scrapeConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if every, ok := cfg.pools["serin-stack"]; !ok || every != time.Second {
		t.Errorf("scrape pools in the loaded configuration = %v, want serin-stack every 1s", cfg.pools)
	}
}
