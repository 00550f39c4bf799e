package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeScrapes is a Prometheus whose one active target, of job
// kubernetes-pods, is scraped every every and exports
// istio_requests_total; no target at all when every is "".
func fakeScrapes(t *testing.T, every string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/targets":
			active := "[]"
			if every != "" {
				active = fmt.Sprintf(`[{"discoveredLabels": {"__address__": "10.0.0.1:15020", "__scrape_interval__": %q, "job": "kubernetes-pods"},
					"labels": {"instance": "10.0.0.1:15020", "job": "kubernetes-pods"}, "scrapePool": "kubernetes-pods",
					"scrapeUrl": "http://10.0.0.1:15020/stats/prometheus", "lastScrape": "2026-12-01T10:16:10Z", "health": "up"}]`, every)
			}
			fmt.Fprintf(w, `{"status": "success", "data": {"activeTargets": %s, "droppedTargets": []}}`, active)
		case "/api/v1/query":
			fmt.Fprint(w, `{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"job": "kubernetes-pods"}, "value": [1700000000, "3"]}]}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestScrapeIntervalCheckedAtStart(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name  string
		args  []string // besides --prometheus-url
		url   string
		want  time.Duration
		level string // of the log line
		inLog []string
	}{
		{
			name: "agrees", args: []string{"--scrape-interval=15s"}, url: fakeScrapes(t, "15s").URL,
			want: 15 * time.Second, level: "INFO",
			inLog: []string{"agrees with Prometheus", "scrape_interval=15s", "prometheus_interval=15s", "job kubernetes-pods"},
		},
		{
			name: "disagrees: Prometheus's interval is used", args: []string{"--scrape-interval=15s"}, url: fakeScrapes(t, "1s").URL,
			want: time.Second, level: "WARN",
			inLog: []string{"disagrees with Prometheus; analysis uses Prometheus's interval", "scrape_interval=15s", "prometheus_interval=1s",
				"the configured scrape interval is 15s, but Prometheus scrapes every 1s"},
		},
		{
			name: "a little off: still Prometheus's interval, without a warning", args: []string{"--scrape-interval=15s"}, url: fakeScrapes(t, "14s").URL,
			want: 14 * time.Second, level: "INFO",
			inLog: []string{"agrees with Prometheus", "prometheus_interval=14s"},
		},
		{
			name: "unreachable: the flag stays", args: []string{"--scrape-interval=15s"}, url: closed.URL,
			want: 15 * time.Second, level: "WARN",
			inLog: []string{"could not check --scrape-interval against Prometheus; analysis uses it as given", "scrape_interval=15s", "connection refused"},
		},
		{
			name: "no targets: the flag stays", args: []string{"--scrape-interval=10s"}, url: fakeScrapes(t, "").URL,
			want: 10 * time.Second, level: "WARN",
			inLog: []string{"could not check --scrape-interval", "scrape_interval=10s", "no active targets"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseControllerFlags(append([]string{"--prometheus-url", tt.url}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			if got := scrapeInterval(t.Context(), o, log); got != tt.want {
				t.Errorf("scrapeInterval = %v, want %v", got, tt.want)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "level="+tt.level) {
				t.Fatalf("log = %q, want one %s line", buf.String(), tt.level)
			}
			for _, s := range tt.inLog {
				if !strings.Contains(lines[0], s) {
					t.Errorf("log line %q does not contain %q", lines[0], s)
				}
			}
		})
	}
}

func TestScrapeIntervalNotCheckedWithoutAnalysis(t *testing.T) {
	for _, args := range [][]string{
		{"--no-analysis", "--scrape-interval=3s"},
		{"--prometheus-url", "not a url", "--scrape-interval=3s"}, // newAnalyzer refuses it
	} {
		o, err := parseControllerFlags(args)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if got := scrapeInterval(t.Context(), o, slog.New(slog.NewTextHandler(&buf, nil))); got != 3*time.Second || buf.Len() != 0 {
			t.Errorf("%v: scrapeInterval = %v, logged %q; want 3s and nothing logged", args, got, buf.String())
		}
	}
}
