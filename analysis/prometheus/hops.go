package prometheus

import (
	"errors"
	"fmt"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/analysis"
)

// byWorkload reports whether a side's outbound calls are recognised by its
// workloads (host mode, or explicit Match) rather than by its version label.
func byWorkload(t analysis.Target, side analysis.Side) bool {
	return t.HostMode || len(side.Match) > 0
}

// workloadKey is a workload in its namespace.
type workloadKey struct{ namespace, name string }

// callerOf returns the test that recognises the hop series of one side.
// In subset mode that is the namespace, canonical service and version of
// the caller. Otherwise it is the set of destination workloads of the
// side's inbound series; it wraps analysis.ErrNoData when there are none.
func callerOf(t analysis.Target, side analysis.Side, role string, inbound []sample) (func(model.Metric) bool, error) {
	if !byWorkload(t, side) {
		return func(l model.Metric) bool {
			return (t.Namespace == "" || string(l["source_workload_namespace"]) == t.Namespace) &&
				string(l["source_canonical_service"]) == t.Service &&
				string(l["source_version"]) == side.Version
		}, nil
	}
	m := inboundMatchers(t, side)
	workloads := map[workloadKey]bool{}
	for _, s := range inbound {
		if matches(s.labels, m) && s.labels["destination_workload"] != "" {
			workloads[workloadKey{string(s.labels["destination_workload_namespace"]), string(s.labels["destination_workload"])}] = true
		}
	}
	if len(workloads) == 0 {
		return nil, fmt.Errorf("no inbound series for %s (%s) to tell its workloads and so its outbound calls: %w",
			describe(t, side, role), formatMatchers(m), analysis.ErrNoData)
	}
	return func(l model.Metric) bool {
		return workloads[workloadKey{string(l["source_workload_namespace"]), string(l["source_workload"])}]
	}, nil
}

// calledService names the destination of a hop series: its canonical
// service, else its service name, else its host.
func calledService(l model.Metric) string {
	for _, name := range []model.LabelName{"destination_canonical_service", "destination_service_name", "destination_service"} {
		if v := string(l[name]); v != "" && v != "unknown" {
			return v
		}
	}
	return "unknown"
}

// splitHops measures, per called service, the calls of both sides of t from
// the shared hop counts and latency buckets. inbound (the shared inbound
// counts, of the same namespaces) is needed only when a side is recognised
// by workload.
func splitHops(t analysis.Target, counts, latency, inbound []sample) (map[string]analysis.Pair, error) {
	canary, errC := callerOf(t, t.Canary, "canary", inbound)
	stable, errS := callerOf(t, t.Stable, "stable", inbound)
	if err := errors.Join(errC, errS); err != nil {
		return nil, err
	}
	called := map[string]bool{}
	for _, s := range counts {
		if canary(s.labels) || stable(s.labels) {
			called[calledService(s.labels)] = true
		}
	}
	out := make(map[string]analysis.Pair, len(called))
	for svc := range called {
		to := func(caller func(model.Metric) bool) func(model.Metric) bool {
			return func(l model.Metric) bool { return caller(l) && calledService(l) == svc }
		}
		var p analysis.Pair
		p.Canary, _ = statsOf(counts, latency, to(canary))
		p.Stable, _ = statsOf(counts, latency, to(stable))
		out[svc] = p
	}
	return out, nil
}
