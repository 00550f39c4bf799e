package prometheus

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/analysis"
)

// smp builds a sample from a value and label name/value pairs.
func smp(v float64, kv ...string) sample {
	m := model.Metric{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
	}
	return sample{labels: setOf(m), value: v}
}

const checkoutFQDN = "checkout.shop.svc.cluster.local"

// in is an inbound count series of checkout in shop.
func in(v float64, version, code string, extra ...string) sample {
	kv := append([]string{
		"destination_workload_namespace", "shop", "destination_service", checkoutFQDN,
		"destination_service_name", "checkout", "destination_canonical_service", "checkout",
		"destination_workload", "checkout-" + version, "destination_version", version, "response_code", code,
	}, extra...)
	return smp(v, kv...)
}

// inLE is an inbound latency bucket series of checkout in shop.
func inLE(v float64, version, le string) sample {
	s := in(v, version, "")
	m := s.labels.metric()
	delete(m, "response_code")
	m["le"] = model.LabelValue(le)
	s.labels = setOf(m)
	return s
}

var subsetTarget = analysis.Target{
	Namespace: "shop", Service: "checkout",
	Canary: analysis.Side{Version: "v2", Host: checkoutFQDN},
	Stable: analysis.Side{Version: "v1", Host: checkoutFQDN},
}

var hostTarget = analysis.Target{
	Namespace: "shop", Service: "checkout", HostMode: true,
	Canary: analysis.Side{Host: "checkout-canary"},
	Stable: analysis.Side{Host: "checkout-stable"},
}

// hostIn is an inbound count series of a host-mode service in a namespace.
func hostIn(v float64, ns, name, code string) sample {
	return smp(v, "destination_workload_namespace", ns, "destination_service", name+"."+ns+".svc.cluster.local",
		"destination_service_name", name, "destination_canonical_service", "checkout",
		"destination_workload", name, "destination_version", "unknown", "response_code", code)
}

func TestSplitInbound(t *testing.T) {
	nan := math.NaN()
	subsetCounts := []sample{
		in(80, "v2", "200"), in(15, "v2", "500"), in(5, "v2", "503"), in(10, "v2", "404"),
		in(99, "v1", "200"), in(1, "v1", "502"),
		in(1000, "v2", "500", "destination_workload_namespace", "other"), // same host label, other namespace
		smp(7, "destination_service", "payments.shop.svc.cluster.local", "destination_version", "v2", "response_code", "500"),
	}
	subsetLatency := []sample{
		inLE(0, "v2", "250"), inLE(110, "v2", "500"), inLE(110, "v2", "+Inf"),
		inLE(100, "v1", "25"), inLE(100, "v1", "50"), inLE(100, "v1", "+Inf"),
	}
	hostCounts := []sample{
		hostIn(40, "shop", "checkout-canary", "200"), hostIn(10, "shop", "checkout-canary", "500"),
		hostIn(100, "shop", "checkout-stable", "200"),
		hostIn(500, "other", "checkout-canary", "500"),
	}
	tests := []struct {
		name           string
		target         analysis.Target
		counts, latens []sample
		want           analysis.Pair
	}{
		{"subset mode", subsetTarget, subsetCounts, subsetLatency, analysis.Pair{
			Canary: analysis.Stats{Requests: 110, Errors: 20, P99Ms: 497.5},
			Stable: analysis.Stats{Requests: 100, Errors: 1, P99Ms: 24.75},
		}},
		{"subset mode without latency", subsetTarget, subsetCounts, nil, analysis.Pair{
			Canary: analysis.Stats{Requests: 110, Errors: 20, P99Ms: nan},
			Stable: analysis.Stats{Requests: 100, Errors: 1, P99Ms: nan},
		}},
		{"subset mode, any namespace", withNamespace(subsetTarget, ""), subsetCounts, nil, analysis.Pair{
			Canary: analysis.Stats{Requests: 1110, Errors: 1020, P99Ms: nan},
			Stable: analysis.Stats{Requests: 100, Errors: 1, P99Ms: nan},
		}},
		{"host mode by short name and namespace", hostTarget, hostCounts, nil, analysis.Pair{
			Canary: analysis.Stats{Requests: 50, Errors: 10, P99Ms: nan},
			Stable: analysis.Stats{Requests: 100, Errors: 0, P99Ms: nan},
		}},
		{"host mode, namespace from a short host", withHosts(withNamespace(hostTarget, ""), "checkout-canary.other", "checkout-stable.shop"), hostCounts, nil, analysis.Pair{
			Canary: analysis.Stats{Requests: 500, Errors: 500, P99Ms: nan},
			Stable: analysis.Stats{Requests: 100, Errors: 0, P99Ms: nan},
		}},
		{"host mode by FQDN", withHosts(withNamespace(hostTarget, ""), "checkout-canary.other.svc.cluster.local", "checkout-stable.shop.svc.cluster.local"), hostCounts, nil, analysis.Pair{
			Canary: analysis.Stats{Requests: 500, Errors: 500, P99Ms: nan},
			Stable: analysis.Stats{Requests: 100, Errors: 0, P99Ms: nan},
		}},
		{"Match overrides the default matchers", withMatch(subsetTarget,
			map[string]string{"destination_workload": "checkout-v2", "destination_workload_namespace": "other"},
			map[string]string{"destination_workload": "checkout-v1"}), subsetCounts, subsetLatency, analysis.Pair{
			Canary: analysis.Stats{Requests: 1000, Errors: 1000, P99Ms: nan},
			Stable: analysis.Stats{Requests: 100, Errors: 1, P99Ms: 24.75},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitInbound(tt.target, newTable(tt.counts), newTable(tt.latens))
			if err != nil {
				t.Fatalf("splitInbound: %v", err)
			}
			assertStats(t, "canary", got.Canary, tt.want.Canary)
			assertStats(t, "stable", got.Stable, tt.want.Stable)
		})
	}
}

func TestSplitInboundNoData(t *testing.T) {
	counts := []sample{in(99, "v1", "200")}
	_, err := splitInbound(subsetTarget, newTable(counts), nil)
	if !errors.Is(err, analysis.ErrNoData) {
		t.Fatalf("err = %v, want ErrNoData", err)
	}
	want := `no inbound series for checkout v2 (destination_service="checkout.shop.svc.cluster.local", destination_version="v2", destination_workload_namespace="shop")`
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "v1") {
		t.Errorf("err = %q, want it to name only the canary: %q", err, want)
	}

	_, err = splitInbound(hostTarget, nil, nil)
	for _, want := range []string{
		`no inbound series for checkout canary (destination_service_name="checkout-canary", destination_workload_namespace="shop")`,
		`no inbound series for checkout stable (destination_service_name="checkout-stable", destination_workload_namespace="shop")`,
	} {
		if !errors.Is(err, analysis.ErrNoData) || !strings.Contains(err.Error(), want) {
			t.Errorf("host mode, no series: err = %v, want ErrNoData containing %q", err, want)
		}
	}
}

// hop is a hop count series from a caller in shop.
func hop(v float64, workload, service, version, called, code string) sample {
	return smp(v, "source_workload_namespace", "shop", "source_workload", workload,
		"source_canonical_service", service, "source_version", version,
		"destination_service", called+".shop.svc.cluster.local", "destination_service_name", called,
		"destination_canonical_service", called, "response_code", code)
}

// hopLE is a hop latency bucket series.
func hopLE(v float64, workload, service, version, called, le string) sample {
	s := hop(v, workload, service, version, called, "")
	m := s.labels.metric()
	delete(m, "response_code")
	m["le"] = model.LabelValue(le)
	s.labels = setOf(m)
	return s
}

func TestSplitHops(t *testing.T) {
	nan := math.NaN()
	counts := []sample{
		hop(90, "checkout-v2", "checkout", "v2", "payments", "200"), hop(10, "checkout-v2", "checkout", "v2", "payments", "503"),
		hop(30, "checkout-v2", "checkout", "v2", "inventory", "200"),
		hop(200, "checkout-v1", "checkout", "v1", "payments", "200"),
		hop(55, "cart-v2", "cart", "v2", "payments", "500"), // another service
	}
	unknownCanonical := hop(5, "checkout-v1", "checkout", "v1", "fraud", "200")
	m := unknownCanonical.labels.metric()
	m["destination_canonical_service"] = "unknown"
	unknownCanonical.labels = setOf(m)
	counts = append(counts, unknownCanonical)
	latency := []sample{
		hopLE(0, "checkout-v2", "checkout", "v2", "payments", "500"), hopLE(100, "checkout-v2", "checkout", "v2", "payments", "1000"),
		hopLE(100, "checkout-v2", "checkout", "v2", "payments", "+Inf"),
		hopLE(200, "checkout-v1", "checkout", "v1", "payments", "25"), hopLE(200, "checkout-v1", "checkout", "v1", "payments", "+Inf"),
	}
	// In host mode the callers are the workloads behind each host.
	inbound := []sample{hostIn(1, "shop", "checkout-v2", "200"), hostIn(1, "shop", "checkout-v1", "200")}
	hostMode := withHosts(hostTarget, "checkout-v2", "checkout-v1")

	want := map[string]analysis.Pair{
		"payments": {
			Canary: analysis.Stats{Requests: 100, Errors: 10, P99Ms: 995},
			Stable: analysis.Stats{Requests: 200, Errors: 0, P99Ms: 24.75},
		},
		"inventory": {Canary: analysis.Stats{Requests: 30, P99Ms: nan}, Stable: analysis.Stats{P99Ms: nan}},
		"fraud":     {Canary: analysis.Stats{P99Ms: nan}, Stable: analysis.Stats{Requests: 5, P99Ms: nan}},
	}
	tests := []struct {
		name    string
		target  analysis.Target
		inbound []sample
	}{
		{"subset mode by version", subsetTarget, nil},
		{"host mode by workload", hostMode, inbound},
		{"Match by workload", withMatch(subsetTarget,
			map[string]string{"destination_workload": "checkout-v2"},
			map[string]string{"destination_workload": "checkout-v1"}), inbound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitHops(tt.target, newTable(counts), newTable(latency), newTable(tt.inbound))
			if err != nil {
				t.Fatalf("splitHops: %v", err)
			}
			if len(got) != len(want) {
				t.Errorf("hops = %v, want keys of %v", got, want)
			}
			for svc, w := range want {
				assertStats(t, svc+" canary", got[svc].Canary, w.Canary)
				assertStats(t, svc+" stable", got[svc].Stable, w.Stable)
			}
		})
	}

	t.Run("no calls", func(t *testing.T) {
		got, err := splitHops(withNamespace(subsetTarget, "other"), newTable(counts), newTable(latency), nil)
		if err != nil || len(got) != 0 {
			t.Errorf("splitHops = %v, %v; want an empty map", got, err)
		}
	})
	t.Run("host mode without inbound series", func(t *testing.T) {
		_, err := splitHops(hostMode, newTable(counts), newTable(latency), newTable(inbound[1:]))
		want := `no inbound series for checkout canary (destination_service_name="checkout-v2", destination_workload_namespace="shop")`
		if !errors.Is(err, analysis.ErrNoData) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "stable") {
			t.Errorf("err = %v, want ErrNoData containing %q", err, want)
		}
	})
}

func withNamespace(t analysis.Target, ns string) analysis.Target {
	t.Namespace = ns
	return t
}

func withHosts(t analysis.Target, canary, stable string) analysis.Target {
	t.Canary.Host, t.Stable.Host = canary, stable
	return t
}

func withMatch(t analysis.Target, canary, stable map[string]string) analysis.Target {
	t.Canary.Match, t.Stable.Match = canary, stable
	return t
}

// assertStats compares Stats, with NaN equal to NaN.
func assertStats(t *testing.T, what string, got, want analysis.Stats) {
	t.Helper()
	if got.Requests != want.Requests || got.Errors != want.Errors || !sameFloat(got.P99Ms, want.P99Ms) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}
