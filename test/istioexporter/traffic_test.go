package istioexporter

import (
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// testExporter builds an exporter of n services without listening or
// watching, for tests that step it by hand.
func testExporter(t *testing.T, n int, seed uint64) *Exporter {
	t.Helper()
	e, err := newExporter(Options{Namespace: "shop", Services: n, RPS: 100, Seed: seed, ServicesPerTarget: 2})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// counts are one target's series summed by a few labels.
type counts struct {
	requests map[string]float64 // "reporter workload code" → requests
	observed map[string]uint64  // same key → histogram count
	labels   []map[string]string
}

func gather(t *testing.T, e *Exporter) counts {
	t.Helper()
	c := counts{requests: map[string]float64{}, observed: map[string]uint64{}}
	for _, tg := range e.targets {
		mfs, err := tg.m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				l := labelMap(m)
				who := l["destination_workload"]
				if l["reporter"] == "source" {
					who = l["source_workload"]
				}
				key := l["reporter"] + " " + who + " " + l["response_code"]
				switch mf.GetName() {
				case "istio_requests_total":
					c.requests[key] += m.GetCounter().GetValue()
					c.labels = append(c.labels, l)
				case "istio_request_duration_milliseconds":
					c.observed[key] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return c
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// within reports whether got is within k standard deviations of a
// Poisson or binomial count with mean want and variance vari.
func within(got, want, vari, k float64) bool { return math.Abs(got-want) <= k*math.Sqrt(vari) }

func TestStepSplitsByWeightAndCountsErrors(t *testing.T) {
	e := testExporter(t, 1, 7)
	s := e.services[0]
	s.canary.Store(10)
	if err := e.SetFault(s.name, CanaryVersion, Fault{ErrorRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		s.step(100*time.Millisecond, 1000, 0) // 10 s at 1,000 rps
	}
	c := gather(t, e)
	v1, v2ok, v2fail := c.requests["destination service-0001-v1 200"], c.requests["destination service-0001-v2 200"], c.requests["destination service-0001-v2 500"]
	if !within(v1, 9000, 9000, 5) || !within(v2ok+v2fail, 1000, 1000, 5) {
		t.Errorf("at weight 10, 10 s at 1,000 rps split %v/%v, want about 9,000/1,000", v1, v2ok+v2fail)
	}
	if !within(v2fail, 500, 1000*0.25, 5) {
		t.Errorf("v2 at 50%% errors failed %v of %v requests, want about half", v2fail, v2ok+v2fail)
	}
	if c.requests["destination service-0001-v1 500"] != 0 {
		t.Errorf("v1 without a fault failed %v requests", c.requests["destination service-0001-v1 500"])
	}
	// Every served request makes one downstream call; a failed one none.
	for _, w := range []string{"service-0001-v1", "service-0001-v2"} {
		in, hop := c.requests["destination "+w+" 200"], c.requests["source "+w+" 200"]
		if in != hop {
			t.Errorf("%s served %v requests and made %v downstream calls, want one each", w, in, hop)
		}
	}
	// The histograms count the same requests as the counters.
	for key, n := range c.requests {
		if float64(c.observed[key]) != n {
			t.Errorf("%s: counter %v, histogram count %v", key, n, c.observed[key])
		}
	}
}

func TestStepWithoutRouteSendsAllToStableAndCreatesSeriesLazily(t *testing.T) {
	e := testExporter(t, 1, 7)
	s := e.services[0] // canary -1: no route
	s.step(time.Second, 100, 0)
	c := gather(t, e)
	for _, l := range c.labels {
		if l["destination_version"] == CanaryVersion || l["source_version"] == CanaryVersion {
			t.Errorf("a series of v2, which got no traffic: %v", l)
		}
		if l["response_code"] != "200" {
			t.Errorf("a series of code %s without errors: %v", l["response_code"], l)
		}
	}
	if c.requests["destination service-0001-v1 200"] == 0 {
		t.Errorf("v1 got no requests: %v", c.requests)
	}
}

func TestSameSeedSameCounts(t *testing.T) {
	run := func(seed uint64) map[string]float64 {
		e := testExporter(t, 3, seed)
		for _, s := range e.services {
			s.canary.Store(25)
		}
		_ = e.SetFault("service-0002", CanaryVersion, Fault{ErrorRate: 0.3})
		for range 20 {
			for _, s := range e.services {
				s.step(100*time.Millisecond, 100, 0.01)
			}
		}
		return gather(t, e).requests
	}
	a, b, other := run(42), run(42), run(43)
	if len(a) == 0 || !equal(a, b) {
		t.Errorf("the same seed gave different counts:\n%v\n%v", a, b)
	}
	if equal(a, other) {
		t.Errorf("seeds 42 and 43 gave the same counts: %v", a)
	}
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSeriesCarryIstioLabels checks the label values serin's shared
// queries group and split by (analysis/prometheus/queries.go).
func TestSeriesCarryIstioLabels(t *testing.T) {
	e := testExporter(t, 1, 1)
	e.services[0].canary.Store(50)
	e.services[0].step(time.Second, 100, 0)
	want := map[string]map[string]string{
		"destination v2": {
			"destination_workload_namespace": "shop", "destination_service": "service-0001.shop.svc.cluster.local",
			"destination_service_name": "service-0001", "destination_canonical_service": "service-0001",
			"destination_workload": "service-0001-v2", "destination_version": "v2",
			"source_workload": "istio-ingressgateway", "connection_security_policy": "mutual_tls",
		},
		"source v2": {
			"source_workload_namespace": "shop", "source_workload": "service-0001-v2",
			"source_canonical_service": "service-0001", "source_version": "v2",
			"destination_service":      "service-0001-store.shop.svc.cluster.local",
			"destination_service_name": "service-0001-store", "destination_canonical_service": "service-0001-store",
		},
	}
	seen := map[string]bool{}
	for _, l := range gather(t, e).labels {
		v := l["destination_version"]
		if l["reporter"] == "source" {
			v = l["source_version"]
		}
		key := l["reporter"] + " " + v
		w, ok := want[key]
		if !ok {
			continue
		}
		seen[key] = true
		for name, value := range w {
			if l[name] != value {
				t.Errorf("%s series: %s=%q, want %q", key, name, l[name], value)
			}
		}
		if len(l) != len(istioLabels) {
			t.Errorf("%s series has %d labels, want Istio's %d", key, len(l), len(istioLabels))
		}
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("no %s series", key)
		}
	}
}

func TestTargetsSplitServices(t *testing.T) {
	e := testExporter(t, 5, 1) // 2 per target
	if len(e.targets) != 3 || len(e.targets[2].services) != 1 {
		t.Fatalf("5 services at 2 per target gave %d targets", len(e.targets))
	}
	if got := strings.Join(e.Services(), ","); got != "service-0001,service-0002,service-0003,service-0004,service-0005" {
		t.Errorf("services %s", got)
	}
}

func TestPoisson(t *testing.T) {
	r := newRand(1, "poisson")
	for _, mean := range []float64{0.5, 3, 29, 200} {
		const n = 20000
		var sum, sq float64
		for range n {
			x := float64(poisson(r, mean))
			sum += x
			sq += x * x
		}
		m := sum / n
		v := sq/n - m*m
		if !within(m, mean, mean/n, 5) || math.Abs(v-mean) > 0.1*mean {
			t.Errorf("poisson(%v): mean %.3f, variance %.3f", mean, m, v)
		}
	}
	if poisson(r, 0) != 0 || poisson(r, -1) != 0 || poisson(r, math.NaN()) != 0 {
		t.Error("poisson of a mean ≤ 0 or NaN is not 0")
	}
}

func TestOptionsRefusedNamingTheField(t *testing.T) {
	good := Options{Namespace: "shop", Services: 1, RPS: 1}
	for _, c := range []struct {
		mutate func(*Options)
		want   string
	}{
		{func(o *Options) { o.Namespace = "" }, "namespace"},
		{func(o *Options) { o.Namespace = "Shop_1" }, "namespace"},
		{func(o *Options) { o.Services = 0 }, "services 0"},
		{func(o *Options) { o.Services = MaxServices + 1 }, "services"},
		{func(o *Options) { o.RPS = -1 }, "rps"},
		{func(o *Options) { o.RPS = math.NaN() }, "rps"},
		{func(o *Options) { o.BackgroundErrorRate = 1.5 }, "background error rate"},
		{func(o *Options) { o.ServicesPerTarget = -1 }, "services per target"},
		{func(o *Options) { o.Step = -time.Second }, "step"},
	} {
		o := good
		c.mutate(&o)
		_, err := newExporter(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %q", o, err, c.want)
		}
	}
	if _, err := Start(t.Context(), good); err == nil || !strings.Contains(err.Error(), "RESTConfig") {
		t.Errorf("Start without a RESTConfig: %v", err)
	}
}
