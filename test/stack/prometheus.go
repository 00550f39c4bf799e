package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// prometheusConfig scrapes every 1s the targets of the file_sd files in the
// directory given (one file per job; the job label comes from the file), so
// that SetScrapeTargets adds or changes a job without a reload.
const prometheusConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: serin-stack
    metrics_path: /metrics
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`

// startPrometheus starts Prometheus on a free port and waits for /-/ready.
func (s *Stack) startPrometheus(ctx context.Context) error {
	s.sdDir = filepath.Join(s.Dir, "prometheus-file-sd")
	if err := os.MkdirAll(s.sdDir, 0o755); err != nil {
		return fmt.Errorf("prometheus: create %s: %w", s.sdDir, err)
	}
	cfgPath := filepath.Join(s.Dir, "prometheus.yml")
	cfg := fmt.Sprintf(prometheusConfig, filepath.Join(s.sdDir, "*.json"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("prometheus: write %s: %w", cfgPath, err)
	}
	return withPortRetry(func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		addr := hostPort(ports[0])
		s.logf("starting prometheus on %s", addr)
		p, err := StartProcess(s.Dir, "prometheus", systemBin("prometheus"),
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(s.Dir, "prometheus-data"),
			"--web.listen-address="+addr,
			"--web.enable-lifecycle",
			"--web.enable-remote-write-receiver",
		)
		if err != nil {
			return err
		}
		s.track(p, &s.prometheus)
		url := "http://" + addr
		if err := waitReady(ctx, p, 30*time.Second, HTTPReady(http.DefaultClient, url+"/-/ready", nil)); err != nil {
			return err
		}
		s.PrometheusURL = url
		return nil
	})
}

// SetScrapeTargets sets the targets (host:port) that Prometheus scrapes every
// second at /metrics under the given job label, replacing that job's previous
// targets; an empty list removes them. Prometheus notices the change by
// itself within about a second.
func (s *Stack) SetScrapeTargets(job string, targets []string) error {
	if s.sdDir == "" {
		return fmt.Errorf("set scrape targets of job %q: the stack runs no Prometheus", job)
	}
	if job == "" || strings.ContainsAny(job, `/\`) || strings.HasPrefix(job, ".") {
		return fmt.Errorf("set scrape targets: invalid job name %q", job)
	}
	if targets == nil {
		targets = []string{}
	}
	groups := []map[string]any{{"targets": targets, "labels": map[string]string{"job": job}}}
	data, err := json.Marshal(groups)
	if err != nil {
		return fmt.Errorf("set scrape targets of job %q: %w", job, err)
	}
	// Write then rename, so that Prometheus never reads a half-written file;
	// the temporary name does not match the *.json glob.
	path := filepath.Join(s.sdDir, job+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("set scrape targets of job %q: %w", job, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("set scrape targets of job %q: %w", job, err)
	}
	return nil
}

// StopPrometheus stops Prometheus only, for tests of a data source that goes
// away. PrometheusURL keeps its value, so that clients see the refusal.
func (s *Stack) StopPrometheus() error {
	s.mu.Lock()
	p := s.prometheus
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("stop prometheus: the stack runs no Prometheus")
	}
	if err := p.Stop(stopGrace); err != nil {
		return fmt.Errorf("stop prometheus: %w", err)
	}
	return nil
}
