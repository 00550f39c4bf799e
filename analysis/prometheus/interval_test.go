package prometheus

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/analysis"
)

// fakeTarget is one active target of a fakeTargets server.
type fakeTarget struct {
	pool, job string
	every     string // the __scrape_interval__ discovered label; "" leaves it out, as Prometheus before 2.33 does
}

// fakeTargets is a fake Prometheus serving /api/v1/targets, the job query
// of ScrapeInterval and /api/v1/status/config.
type fakeTargets struct {
	*httptest.Server
	configs atomic.Int64 // how many times the configuration was asked for
}

// newFakeTargets serves targets, with istioJobs as the jobs that export
// istio_requests_total and config as the loaded configuration.
func newFakeTargets(t *testing.T, targets []fakeTarget, istioJobs []string, config string) *fakeTargets {
	t.Helper()
	f := &fakeTargets{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/targets":
			fmt.Fprint(w, targetsBody(targets))
		case "/api/v1/query":
			if q := r.FormValue("query"); q != IstioJobsQuery {
				t.Errorf("unexpected query %q", q)
			}
			var samples []sample
			for _, job := range istioJobs {
				samples = append(samples, sample{labels: setOf(model.Metric{model.JobLabel: model.LabelValue(job)}), value: 3})
			}
			fmt.Fprint(w, vectorBody(samples...))
		case "/api/v1/status/config":
			f.configs.Add(1)
			data, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]string{"yaml": config}})
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// targetsBody is Prometheus's answer listing targets as active targets.
func targetsBody(targets []fakeTarget) string {
	active := []map[string]any{}
	for i, tg := range targets {
		addr := fmt.Sprintf("10.0.0.%d:15020", i+1)
		discovered := map[string]string{"__address__": addr, "__metrics_path__": "/stats/prometheus", "__scheme__": "http", "job": tg.pool}
		if tg.every != "" {
			discovered["__scrape_interval__"] = tg.every
		}
		active = append(active, map[string]any{
			"discoveredLabels": discovered,
			"labels":           map[string]string{"instance": addr, "job": tg.job},
			"scrapePool":       tg.pool,
			"scrapeUrl":        "http://" + addr + "/stats/prometheus",
			"lastError":        "",
			"lastScrape":       "2026-12-01T10:16:10.5Z",
			"health":           "up",
		})
	}
	data, err := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"activeTargets": active, "droppedTargets": []any{}}})
	if err != nil {
		panic(err)
	}
	return string(data)
}

// meshTargets are the targets of a small mesh: three sidecars under job
// kubernetes-pods and one istiod, each scraped every pods, and two nodes
// every nodes.
func meshTargets(pods, nodes string) []fakeTarget {
	return []fakeTarget{
		{"kubernetes-pods", "kubernetes-pods", pods}, {"kubernetes-pods", "kubernetes-pods", pods},
		{"kubernetes-pods", "kubernetes-pods", pods}, {"istiod", "istiod", pods},
		{"kubernetes-nodes", "kubernetes-nodes", nodes}, {"kubernetes-nodes", "kubernetes-nodes", nodes},
	}
}

func TestScrapeInterval(t *testing.T) {
	istio := []string{"kubernetes-pods"}
	tests := []struct {
		name       string
		targets    []fakeTarget
		istioJobs  []string
		config     string
		configured time.Duration // the --scrape-interval to compare with
		want       Interval
		warn       string // in the mismatch warning; "" means none
	}{
		{
			name:    "agrees with the configured interval",
			targets: meshTargets("15s", "1m"), istioJobs: istio, configured: 15 * time.Second,
			want: Interval{Every: 15 * time.Second, Istio: true, Jobs: istio, Targets: 3},
		},
		{
			name:    "disagrees: Prometheus scrapes the sidecars every second",
			targets: meshTargets("1s", "30s"), istioJobs: istio, configured: 15 * time.Second,
			want: Interval{Every: time.Second, Istio: true, Jobs: istio, Targets: 3},
			warn: "the configured scrape interval is 15s, but Prometheus scrapes every 1s (3 targets of job kubernetes-pods, which exports istio_requests_total)",
		},
		{
			name: "the Istio job's interval wins over the most common one",
			targets: append(meshTargets("30s", "30s"),
				fakeTarget{"envoy-stats", "envoy-stats", "5s"}, fakeTarget{"envoy-stats", "envoy-stats", "5s"}),
			istioJobs: []string{"envoy-stats"}, configured: 5 * time.Second,
			want: Interval{Every: 5 * time.Second, Istio: true, Jobs: []string{"envoy-stats"}, Targets: 2},
		},
		{
			name: "the longest interval among several Istio jobs",
			targets: append(meshTargets("10s", "1m"),
				fakeTarget{"envoy-stats", "envoy-stats", "5s"}),
			istioJobs: []string{"envoy-stats", "kubernetes-pods", "gone-job"}, configured: 10 * time.Second,
			want: Interval{Every: 10 * time.Second, Istio: true, Jobs: []string{"envoy-stats", "kubernetes-pods"}, Targets: 4},
		},
		{
			name:    "no Istio series yet: the most common interval",
			targets: meshTargets("15s", "1m"), configured: time.Minute,
			want: Interval{Every: 15 * time.Second, Jobs: []string{"istiod", "kubernetes-pods"}, Targets: 4},
			warn: "the configured scrape interval is 1m0s, but Prometheus scrapes every 15s (the most common interval, of 4 targets of jobs istiod, kubernetes-pods; no istio_requests_total series yet)",
		},
		{
			name:       "no Istio series yet, a tie: the longer interval",
			targets:    []fakeTarget{{"a", "a", "1s"}, {"b", "b", "30s"}, {"a", "a", "1s"}, {"b", "b", "30s"}},
			configured: 30 * time.Second,
			want:       Interval{Every: 30 * time.Second, Jobs: []string{"b"}, Targets: 2},
		},
		{
			name:      "a job relabelled: the target's job label counts, not its pool",
			targets:   []fakeTarget{{"serin-stack", "istio-mesh", "1s"}, {"serin-stack", "other", "1s"}, {"slow", "istio-mesh", "7s"}},
			istioJobs: []string{"istio-mesh"}, configured: 7 * time.Second,
			want: Interval{Every: 7 * time.Second, Istio: true, Jobs: []string{"istio-mesh"}, Targets: 2},
		},
		{
			name:    "Prometheus before 2.33: the intervals come from the configuration",
			targets: []fakeTarget{{"kubernetes-pods", "kubernetes-pods", ""}, {"fast", "fast", ""}, {"from-files", "from-files", ""}},
			config: "global:\n  scrape_interval: 20s\nscrape_configs:\n- job_name: kubernetes-pods\n" +
				"- job_name: fast\n  scrape_interval: 2s\n",
			istioJobs: istio, configured: 15 * time.Second,
			want: Interval{Every: 20 * time.Second, Istio: true, Jobs: istio, Targets: 1},
		},
		{
			name:      "a configuration without a global interval: Prometheus's default of 1m",
			targets:   []fakeTarget{{"kubernetes-pods", "kubernetes-pods", ""}},
			config:    "scrape_configs:\n- job_name: kubernetes-pods\n",
			istioJobs: istio, configured: 15 * time.Second,
			want: Interval{Every: time.Minute, Istio: true, Jobs: istio, Targets: 1},
			warn: "15s, but Prometheus scrapes every 1m0s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeTargets(t, tt.targets, tt.istioJobs, tt.config)
			got, err := newSource(t, f.URL, time.Second).ScrapeInterval(t.Context())
			if err != nil {
				t.Fatalf("ScrapeInterval: %v", err)
			}
			if got.Every != tt.want.Every || got.Istio != tt.want.Istio || !slices.Equal(got.Jobs, tt.want.Jobs) || got.Targets != tt.want.Targets {
				t.Errorf("ScrapeInterval = %+v, want %+v", got, tt.want)
			}
			warning := IntervalMismatch(tt.configured, got)
			if tt.warn == "" && warning != "" || !strings.Contains(warning, tt.warn) {
				t.Errorf("IntervalMismatch(%v, %+v) = %q, want one containing %q", tt.configured, got, warning, tt.warn)
			}
			if needsConfig := slices.ContainsFunc(tt.targets, func(tg fakeTarget) bool { return tg.every == "" }); needsConfig != (f.configs.Load() == 1) {
				t.Errorf("configuration asked for %d times, want once only when a target lacks __scrape_interval__", f.configs.Load())
			}
		})
	}
}

func TestScrapeIntervalErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	status := func(code int, body string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	noTargets := newFakeTargets(t, nil, nil, "")
	oldWithoutPools := newFakeTargets(t, []fakeTarget{{"from-files", "from-files", ""}}, nil, "global:\n  scrape_interval: 15s\n")
	badConfig := newFakeTargets(t, []fakeTarget{{"a", "a", ""}}, nil, "global:\n  scrape_interval: often\n")
	tests := []struct {
		name     string
		addr     string
		sentinel error // nil means neither ErrUnavailable nor ErrNoData
		inError  string
	}{
		{"unreachable", closed.URL, analysis.ErrUnavailable, "connection refused"},
		{"HTTP 503", status(503, `{"status":"error","errorType":"unavailable","error":"shutting down"}`).URL, analysis.ErrUnavailable, "shutting down"},
		{"not Prometheus", status(404, "404 page not found").URL, analysis.ErrUnavailable, "targets"},
		{"no targets", noTargets.URL, analysis.ErrNoData, "no active targets"},
		{"no target's interval known", oldWithoutPools.URL, nil, "none of its 1 active targets has a known interval"},
		{"a configuration that does not parse", badConfig.URL, analysis.ErrUnavailable, `global scrape_interval "often"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newSource(t, tt.addr, time.Second).ScrapeInterval(t.Context())
			if err == nil {
				t.Fatalf("ScrapeInterval = %+v, want an error", got)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.addr) || !strings.Contains(err.Error(), tt.inError) {
				t.Errorf("error %q, want one naming %s and containing %q", err, tt.addr, tt.inError)
			}
			for _, s := range []error{analysis.ErrUnavailable, analysis.ErrNoData} {
				if is := errors.Is(err, s); is != (s == tt.sentinel) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, is, !is)
				}
			}
		})
	}
}

func TestIntervalMismatch(t *testing.T) {
	learned := func(d time.Duration) Interval {
		return Interval{Every: d, Istio: true, Jobs: []string{"kubernetes-pods"}, Targets: 3}
	}
	tests := []struct {
		configured, learned time.Duration
		warns               bool
	}{
		{15 * time.Second, 15 * time.Second, false},
		{15 * time.Second, 12 * time.Second, false}, // 3s off, exactly a quarter of 12s
		{15 * time.Second, 20 * time.Second, false}, // 5s off, exactly a quarter of 20s
		{15 * time.Second, 11 * time.Second, true},
		{15 * time.Second, 21 * time.Second, true},
		{15 * time.Second, time.Second, true},
		{time.Second, 15 * time.Second, true},
		{15 * time.Second, 30 * time.Second, true},
		{900 * time.Millisecond, time.Second, false},
	}
	for _, tt := range tests {
		got := IntervalMismatch(tt.configured, learned(tt.learned))
		if (got != "") != tt.warns {
			t.Errorf("IntervalMismatch(%v, %v) = %q, want a warning: %v", tt.configured, tt.learned, got, tt.warns)
		}
		if tt.warns && (!strings.Contains(got, tt.configured.String()) || !strings.Contains(got, "every "+tt.learned.String())) {
			t.Errorf("IntervalMismatch(%v, %v) = %q, want both intervals named", tt.configured, tt.learned, got)
		}
	}
}
