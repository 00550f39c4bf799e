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

// caller recognises the hop series of one side: keep tests a series, and
// rows picks from a shared answer the few series keep may accept, through
// the answer's index.
type caller struct {
	keep func(labelSet) bool
	rows func(*table) []sample
}

// callerOf returns the caller of one side. In subset mode that is the
// namespace, canonical service and version of the caller. Otherwise it is
// the set of destination workloads of the side's inbound series; it wraps
// analysis.ErrNoData when there are none.
func callerOf(t analysis.Target, side analysis.Side, role string, inbound *table) (caller, error) {
	if !byWorkload(t, side) {
		return caller{
			keep: func(l labelSet) bool {
				return (t.Namespace == "" || string(l.get("source_workload_namespace")) == t.Namespace) &&
					string(l.get("source_canonical_service")) == t.Service &&
					string(l.get("source_version")) == side.Version
			},
			rows: func(tb *table) []sample { return tb.where("source_canonical_service", t.Service) },
		}, nil
	}
	m := inboundMatchers(t, side)
	workloads := map[workloadKey]bool{}
	names := map[string]bool{}
	for _, s := range inbound.candidates(m) {
		if matches(s.labels, m) && s.labels.get("destination_workload") != "" {
			workloads[workloadKey{string(s.labels.get("destination_workload_namespace")), string(s.labels.get("destination_workload"))}] = true
			names[string(s.labels.get("destination_workload"))] = true
		}
	}
	if len(workloads) == 0 {
		return caller{}, fmt.Errorf("no inbound series for %s (%s) to tell its workloads and so its outbound calls: %w",
			describe(t, side, role), formatMatchers(m), analysis.ErrNoData)
	}
	return caller{
		keep: func(l labelSet) bool {
			return workloads[workloadKey{string(l.get("source_workload_namespace")), string(l.get("source_workload"))}]
		},
		rows: func(tb *table) []sample {
			var out []sample
			for name := range names {
				out = append(out, tb.where("source_workload", name)...)
			}
			return out
		},
	}, nil
}

// calledService names the destination of a hop series: its canonical
// service, else its service name, else its host.
func calledService(l labelSet) string {
	for _, name := range []model.LabelName{"destination_canonical_service", "destination_service_name", "destination_service"} {
		if v := string(l.get(name)); v != "" && v != "unknown" {
			return v
		}
	}
	return "unknown"
}

// splitHops measures, per called service, the calls of both sides of t from
// the shared hop counts and latency buckets. inbound (the shared inbound
// counts, of the same namespaces) is needed only when a side is recognised
// by workload.
func splitHops(t analysis.Target, counts, latency, inbound *table) (map[string]analysis.Pair, error) {
	canary, errC := callerOf(t, t.Canary, "canary", inbound)
	stable, errS := callerOf(t, t.Stable, "stable", inbound)
	if err := errors.Join(errC, errS); err != nil {
		return nil, err
	}
	type sideRows struct{ counts, latency []sample }
	of := func(c caller) sideRows {
		return sideRows{counts: keepOnly(c.rows(counts), c.keep), latency: keepOnly(c.rows(latency), c.keep)}
	}
	rowsC, rowsS := of(canary), of(stable)
	called := map[string]bool{}
	for _, rows := range [][]sample{rowsC.counts, rowsS.counts} {
		for _, s := range rows {
			called[calledService(s.labels)] = true
		}
	}
	out := make(map[string]analysis.Pair, len(called))
	for svc := range called {
		to := func(l labelSet) bool { return calledService(l) == svc }
		var p analysis.Pair
		p.Canary, _ = statsOf(rowsC.counts, rowsC.latency, to)
		p.Stable, _ = statsOf(rowsS.counts, rowsS.latency, to)
		if counts != nil {
			p.At = counts.at
		}
		out[svc] = p
	}
	return out, nil
}

// keepOnly returns the samples that keep accepts, in a new slice.
func keepOnly(rows []sample, keep func(labelSet) bool) []sample {
	var out []sample
	for _, s := range rows {
		if keep(s.labels) {
			out = append(out, s)
		}
	}
	return out
}
