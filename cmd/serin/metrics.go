package main

import (
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// namedGatherer builds only the families asked for (all for none), as
// rollout.RolloutSeries does.
type namedGatherer interface {
	GatherNames(names []string) []*dto.MetricFamily
}

// withSeries is a registry whose Gather adds the engine's per-rollout
// series (rollout.RolloutSeries) to the registry's own families. They
// are kept out of the registry because its Gather sorts and checks every
// series, which at a thousand rollouts cost more CPU than the rollouts'
// analysis.
type withSeries struct {
	ctrlmetrics.RegistererGatherer
	series namedGatherer
}

func (r withSeries) Gather() ([]*dto.MetricFamily, error) { return r.gatherNames(nil) }

// gatherNames gathers the registry and the families of series named, or
// all of them for none, sorted by name.
func (r withSeries) gatherNames(names []string) ([]*dto.MetricFamily, error) {
	fams, err := r.RegistererGatherer.Gather()
	fams = append(fams, r.series.GatherNames(names)...)
	slices.SortFunc(fams, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return fams, err
}

// serveSeriesToo makes controller-runtime's registry, which its metrics
// server (--metrics-addr) serves, gather the engine's series as well, and
// returns it.
func serveSeriesToo(series namedGatherer) withSeries {
	base := ctrlmetrics.Registry
	if w, ok := base.(withSeries); ok { // a second controller in one process
		base = w.RegistererGatherer
	}
	r := withSeries{RegistererGatherer: base, series: series}
	ctrlmetrics.Registry = r
	return r
}

// metricsHandler serves /metrics from r. With ?name[]=, which promhttp
// honours by dropping the families not named after gathering, the
// engine's series not named are not even built: a client that reads one
// family every second (the scale benchmark reads the last-analysis
// times) does not pay for the 50,000 verdict series of a thousand
// rollouts.
func metricsHandler(r withSeries) http.Handler {
	all := promhttp.HandlerFor(r, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		names := req.URL.Query()["name[]"]
		if len(names) == 0 {
			all.ServeHTTP(w, req)
			return
		}
		g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return r.gatherNames(names) })
		promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(w, req)
	})
}
