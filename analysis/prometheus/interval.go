package prometheus

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/analysis"
)

// IstioJobsQuery finds the jobs whose targets export Istio's request
// metric, the one every analysis reads, so that ScrapeInterval can tell
// the targets that serve Istio's metrics from the others.
const IstioJobsQuery = `count by (job) (istio_requests_total)`

// IntervalTolerance is how far a configured scrape interval may be from
// the one Prometheus uses, as a fraction of the latter, before
// IntervalMismatch reports a disagreement. A quarter lets 15s pass against
// 12s to 20s, and catches 15s against 1s, 10s or 30s.
const IntervalTolerance = 0.25

// defaultGlobalInterval is Prometheus's global scrape_interval when its
// configuration sets none.
const defaultGlobalInterval = time.Minute

// Interval is a scrape interval learned from Prometheus, with what it was
// learned from.
type Interval struct {
	// Every is the scrape interval.
	Every time.Duration
	// Istio reports whether Every was learned from the targets whose job
	// exports istio_requests_total. When false, Prometheus has no Istio
	// series yet (a mesh before its first request) and Every is the most
	// common interval among all active targets, which in a mesh are mostly
	// the sidecars.
	Istio bool
	// Jobs are the job labels of the targets Every was learned from,
	// sorted.
	Jobs []string
	// Targets is how many active targets Every was learned from.
	Targets int
}

// ScrapeInterval asks Prometheus how often it scrapes the targets that
// serve Istio's metrics.
//
// Each active target's interval is its __scrape_interval__ discovered
// label, which Prometheus 2.33 and later set from the job's configuration
// or from service discovery; for older servers it is read from the
// scrape_interval of the target's scrape pool in the loaded configuration
// (or the global one). An interval set by relabelling is not seen: the
// targets API's scrapeInterval field would show it, but client_golang's
// ActiveTarget does not carry it.
//
// When some targets belong to a job that exports istio_requests_total,
// the result is the longest interval among them, since an analysis window
// must hold two scrapes of every series it reads. Otherwise it is the most
// common interval among all active targets, the longer one on a tie, and
// Interval.Istio is false.
//
// It wraps analysis.ErrUnavailable when Prometheus cannot be asked, and
// analysis.ErrNoData when Prometheus has no active target.
func (s *Source) ScrapeInterval(ctx context.Context) (Interval, error) {
	targets, err := s.activeTargets(ctx)
	if err != nil {
		return Interval{}, err
	}
	if len(targets) == 0 {
		return Interval{}, fmt.Errorf("scrape interval of Prometheus at %s: no active targets: %w", s.addr, analysis.ErrNoData)
	}
	known, err := s.targetIntervals(ctx, targets)
	if err != nil {
		return Interval{}, err
	}
	if len(known) == 0 {
		return Interval{}, fmt.Errorf("scrape interval of Prometheus at %s: none of its %d active targets has a known interval (scrape pools missing from /api/v1/status/config)",
			s.addr, len(targets))
	}
	istio, err := s.istioJobs(ctx)
	if err != nil {
		return Interval{}, err
	}
	return pickInterval(known, istio), nil
}

// scraped is one active target's job and scrape interval.
type scraped struct {
	job   string
	every time.Duration
}

// activeTargets returns Prometheus's active targets.
func (s *Source) activeTargets(ctx context.Context) ([]v1.ActiveTarget, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := s.api.Targets(ctx)
	if err != nil {
		return nil, s.unavailable("targets", withDetail(err))
	}
	return res.Active, nil
}

// targetIntervals returns the job and interval of each target whose
// interval is known, asking for the configuration only when a target has
// no __scrape_interval__ label.
func (s *Source) targetIntervals(ctx context.Context, targets []v1.ActiveTarget) ([]scraped, error) {
	var cfg *scrapeConfig
	out := make([]scraped, 0, len(targets))
	for _, t := range targets {
		every, ok := labelInterval(t.DiscoveredLabels[model.ScrapeIntervalLabel])
		if !ok {
			if cfg == nil {
				c, err := s.scrapeConfig(ctx)
				if err != nil {
					return nil, err
				}
				cfg = &c
			}
			every, ok = cfg.pools[t.ScrapePool]
		}
		if ok {
			out = append(out, scraped{job: string(t.Labels[model.JobLabel]), every: every})
		}
	}
	return out, nil
}

// labelInterval parses a __scrape_interval__ label; ok is false when it is
// missing or not a positive duration.
func labelInterval(v string) (time.Duration, bool) {
	d, err := model.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, false
	}
	return time.Duration(d), true
}

// scrapeConfig is the part of Prometheus's configuration that sets scrape
// intervals: each scrape pool's, by job_name, the global one filled in.
type scrapeConfig struct {
	pools map[string]time.Duration
}

// scrapeConfig reads the intervals from the configuration Prometheus has
// loaded. Pools from scrape_config_files are not in it, and stay unknown.
func (s *Source) scrapeConfig(ctx context.Context) (scrapeConfig, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := s.api.Config(ctx)
	if err != nil {
		return scrapeConfig{}, s.unavailable("configuration", withDetail(err))
	}
	cfg, err := parseScrapeConfig(res.YAML)
	if err != nil {
		return scrapeConfig{}, s.unavailable("configuration", err)
	}
	return cfg, nil
}

// parseScrapeConfig reads the global and per-job scrape intervals of a
// Prometheus configuration.
func parseScrapeConfig(text string) (scrapeConfig, error) {
	var raw struct {
		Global struct {
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"global"`
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(text), &raw); err != nil {
		return scrapeConfig{}, fmt.Errorf("parse: %w", err)
	}
	global := defaultGlobalInterval
	if raw.Global.ScrapeInterval != "" {
		d, ok := labelInterval(raw.Global.ScrapeInterval)
		if !ok {
			return scrapeConfig{}, fmt.Errorf("global scrape_interval %q is not a positive duration", raw.Global.ScrapeInterval)
		}
		global = d
	}
	cfg := scrapeConfig{pools: map[string]time.Duration{}}
	for _, sc := range raw.ScrapeConfigs {
		every := global
		if sc.ScrapeInterval != "" {
			d, ok := labelInterval(sc.ScrapeInterval)
			if !ok {
				return scrapeConfig{}, fmt.Errorf("scrape_interval %q of job %q is not a positive duration", sc.ScrapeInterval, sc.JobName)
			}
			every = d
		}
		cfg.pools[sc.JobName] = every
	}
	return cfg, nil
}

// istioJobs returns the job labels of the series of istio_requests_total.
func (s *Source) istioJobs(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	val, err := s.query(ctx, IstioJobsQuery, s.now())
	if err != nil {
		return nil, s.unavailable(IstioJobsQuery, err)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, s.unavailable(IstioJobsQuery, fmt.Errorf("answer is a %s, want a vector", val.Type()))
	}
	jobs := map[string]bool{}
	for _, smp := range vec {
		jobs[string(smp.Metric[model.JobLabel])] = true
	}
	return jobs, nil
}

// pickInterval chooses among the targets' intervals as ScrapeInterval
// documents: the longest among the targets of Istio's jobs, or else the
// most common, the longer on a tie. all must not be empty.
func pickInterval(all []scraped, istio map[string]bool) Interval {
	var mine []scraped
	for _, t := range all {
		if istio[t.job] {
			mine = append(mine, t)
		}
	}
	if len(mine) > 0 {
		longest := slices.MaxFunc(mine, func(a, b scraped) int { return cmp.Compare(a.every, b.every) })
		return Interval{Every: longest.every, Istio: true, Jobs: jobsOf(mine, -1), Targets: len(mine)}
	}
	count := map[time.Duration]int{}
	var best time.Duration
	for _, t := range all {
		count[t.every]++
		if n := count[t.every]; n > count[best] || n == count[best] && t.every > best {
			best = t.every
		}
	}
	return Interval{Every: best, Jobs: jobsOf(all, best), Targets: count[best]}
}

// jobsOf returns the distinct jobs of the targets scraped every every (of
// all targets when every is negative), sorted.
func jobsOf(targets []scraped, every time.Duration) []string {
	var jobs []string
	for _, t := range targets {
		if every < 0 || t.every == every {
			jobs = append(jobs, t.job)
		}
	}
	slices.Sort(jobs)
	return slices.Compact(jobs)
}

// IntervalMismatch returns a warning naming both intervals when configured
// differs from learned.Every by more than IntervalTolerance of
// learned.Every, or "" when they agree. It says nothing of which one is
// used, which is the caller's choice.
func IntervalMismatch(configured time.Duration, learned Interval) string {
	diff := configured - learned.Every
	if diff < 0 {
		diff = -diff
	}
	if float64(diff) <= IntervalTolerance*float64(learned.Every) {
		return ""
	}
	return fmt.Sprintf("the configured scrape interval is %v, but Prometheus scrapes every %v (%s)", configured, learned.Every, learned.Basis())
}

// Basis says what the interval was learned from, e.g. "2 targets of job
// kubernetes-pods, which exports istio_requests_total".
func (i Interval) Basis() string {
	jobs, export := "job "+strings.Join(i.Jobs, ", "), "exports"
	if len(i.Jobs) > 1 {
		jobs, export = "jobs "+strings.Join(i.Jobs, ", "), "export"
	}
	if i.Istio {
		return fmt.Sprintf("%d targets of %s, which %s istio_requests_total", i.Targets, jobs, export)
	}
	return fmt.Sprintf("the most common interval, of %d targets of %s; no istio_requests_total series yet", i.Targets, jobs)
}
