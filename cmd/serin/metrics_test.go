package main

import (
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// fakeSeries stands in for rollout.RolloutSeries: two families, and the
// names it was last asked for.
type fakeSeries struct{ asked [][]string }

func (f *fakeSeries) GatherNames(names []string) []*dto.MetricFamily {
	f.asked = append(f.asked, names)
	var out []*dto.MetricFamily
	for _, name := range []string{"serin_rollout_step", "serin_analysis_check_verdict"} {
		if len(names) == 0 || slices.Contains(names, name) {
			v := 1.0
			out = append(out, &dto.MetricFamily{Name: &name, Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}})
		}
	}
	return out
}

func TestMetricsServeTheRolloutSeriesBesideTheRegistry(t *testing.T) {
	saved := ctrlmetrics.Registry
	t.Cleanup(func() { ctrlmetrics.Registry = saved })
	ctrlmetrics.Registry = prometheus.NewRegistry()
	ctrlmetrics.Registry.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "workqueue_adds_total"}))

	fake := &fakeSeries{}
	serveSeriesToo(&fakeSeries{})
	r := serveSeriesToo(fake) // a second controller in the process replaces the first's series
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	if want := []string{"serin_analysis_check_verdict", "serin_rollout_step", "workqueue_adds_total"}; !slices.Equal(names, want) {
		t.Errorf("controller-runtime's registry gathers %v, want %v, sorted, each once", names, want)
	}

	get := func(url string) string {
		w := httptest.NewRecorder()
		metricsHandler(r).ServeHTTP(w, httptest.NewRequest("GET", url, nil))
		body, _ := io.ReadAll(w.Result().Body)
		return string(body)
	}
	fake.asked = nil
	all := get("/metrics")
	for _, name := range names {
		if !strings.Contains(all, "\n"+name+" ") {
			t.Errorf("/metrics lacks %s:\n%s", name, all)
		}
	}
	one := get("/metrics?name[]=serin_rollout_step&name[]=workqueue_adds_total")
	if !strings.Contains(one, "serin_rollout_step 1") || !strings.Contains(one, "workqueue_adds_total 0") || strings.Contains(one, "serin_analysis_check_verdict") {
		t.Errorf("/metrics?name[]= for two families answered:\n%s", one)
	}
	if want := [][]string{nil, {"serin_rollout_step", "workqueue_adds_total"}}; !slices.EqualFunc(fake.asked, want, slices.Equal) {
		t.Errorf("the series were asked for %q, want %q: only the named ones built", fake.asked, want)
	}
}
