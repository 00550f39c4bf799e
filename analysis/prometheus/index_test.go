package prometheus

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/serin-dev/serin/analysis"
)

// mesh builds the four shared answers of a generated mesh of n services in
// two namespaces, each with versions v1 and v2 and a host-mode pair of
// workloads, calling up to three other services.
func mesh(rng *rand.Rand, n int) (inCounts, inLatency, hopCounts, hopLatency []sample) {
	codes := []string{"200", "200", "500", "503", "404"}
	les := []string{"5", "10", "50", "100", "+Inf"}
	for i := range n {
		ns := []string{"shop", "pay"}[i%2]
		svc := fmt.Sprintf("svc-%04d", i)
		host := svc + "." + ns + ".svc.cluster.local"
		for _, w := range []struct{ workload, version, service string }{
			{svc + "-v1", "v1", host}, {svc + "-v2", "v2", host},
			{svc + "-stable", "unknown", svc + "-stable." + ns + ".svc.cluster.local"},
			{svc + "-canary", "unknown", svc + "-canary." + ns + ".svc.cluster.local"},
		} {
			base := []string{"destination_workload_namespace", ns, "destination_service", w.service,
				"destination_service_name", shortName(w.service), "destination_canonical_service", svc,
				"destination_workload", w.workload, "destination_version", w.version}
			for _, c := range codes[:1+rng.IntN(len(codes))] {
				inCounts = append(inCounts, smp(float64(rng.IntN(1000)), append(base, "response_code", c)...))
			}
			for _, le := range les {
				inLatency = append(inLatency, smp(float64(rng.IntN(1000)), append(base, "le", le)...))
			}
			for range rng.IntN(4) {
				to := fmt.Sprintf("svc-%04d", rng.IntN(n))
				hop := []string{"source_workload_namespace", ns, "source_workload", w.workload,
					"source_canonical_service", svc, "source_version", w.version,
					"destination_service", to + ".shop.svc.cluster.local", "destination_service_name", to,
					"destination_canonical_service", to}
				hopCounts = append(hopCounts, smp(float64(rng.IntN(1000)), append(hop, "response_code", codes[rng.IntN(len(codes))])...))
				for _, le := range les {
					hopLatency = append(hopLatency, smp(float64(rng.IntN(1000)), append(hop, "le", le)...))
				}
			}
		}
	}
	return inCounts, inLatency, hopCounts, hopLatency
}

// shortName is the first label of a host.
func shortName(host string) string {
	for i := range host {
		if host[i] == '.' {
			return host[:i]
		}
	}
	return host
}

// targetsOf returns a subset-mode and a host-mode target of service i.
func targetsOf(i int) []analysis.Target {
	ns := []string{"shop", "pay"}[i%2]
	svc := fmt.Sprintf("svc-%04d", i)
	host := svc + "." + ns + ".svc.cluster.local"
	return []analysis.Target{
		{Namespace: ns, Service: svc, Canary: analysis.Side{Version: "v2", Host: host}, Stable: analysis.Side{Version: "v1", Host: host}},
		{Namespace: ns, Service: svc, HostMode: true, Canary: analysis.Side{Host: svc + "-canary"}, Stable: analysis.Side{Host: svc + "-stable"}},
		{Namespace: ns, Service: svc, Canary: analysis.Side{Match: map[string]string{"destination_workload": svc + "-v2", "destination_workload_namespace": ns}},
			Stable: analysis.Side{Match: map[string]string{"destination_version": "v1", "destination_canonical_service": svc}}},
	}
}

// TestIndexedSplitIsTheFullScan: over generated meshes, splitting a shared
// answer through its index gives, for every target, exactly what scanning
// every series gives (the index is an optimisation, never a filter).
func TestIndexedSplitIsTheFullScan(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 7))
		ic, il, hc, hl := mesh(rng, 40)
		for i := range 40 {
			for _, tg := range targetsOf(i) {
				got, errGot := splitInbound(tg, newTable(ic), newTable(il))
				want, errWant := scanInbound(tg, ic, il)
				if !reflect.DeepEqual(fmt.Sprint(got), fmt.Sprint(want)) || (errGot == nil) != (errWant == nil) {
					t.Fatalf("seed %d %+v: indexed inbound %+v (%v), full scan %+v (%v)", seed, tg, got, errGot, want, errWant)
				}
				gotH, errGot := splitHops(tg, newTable(hc), newTable(hl), newTable(ic))
				wantH, errWant := scanHops(tg, hc, hl, ic)
				if fmt.Sprint(gotH) != fmt.Sprint(wantH) || (errGot == nil) != (errWant == nil) {
					t.Fatalf("seed %d %+v: indexed hops %v (%v), full scan %v (%v)", seed, tg, gotH, errGot, wantH, errWant)
				}
			}
		}
	}
}

// scanInbound is splitInbound by scanning every series: the reference.
func scanInbound(t analysis.Target, counts, latency []sample) (analysis.Pair, error) {
	var pair analysis.Pair
	var err error
	for _, side := range []struct {
		side analysis.Side
		out  *analysis.Stats
	}{{t.Canary, &pair.Canary}, {t.Stable, &pair.Stable}} {
		m := inboundMatchers(t, side.side)
		st, found := statsOf(counts, latency, func(l labelSet) bool { return matches(l, m) })
		if !found {
			err = analysis.ErrNoData
			continue
		}
		*side.out = st
	}
	return pair, err
}

// scanHops is splitHops by scanning every series: the reference.
func scanHops(t analysis.Target, counts, latency, inbound []sample) (map[string]analysis.Pair, error) {
	keepAll := func(rows []sample) []sample { return rows }
	canary, err1 := callerOf(t, t.Canary, "canary", newTable(inbound))
	stable, err2 := callerOf(t, t.Stable, "stable", newTable(inbound))
	if err1 != nil || err2 != nil {
		return nil, analysis.ErrNoData
	}
	out := map[string]analysis.Pair{}
	for _, s := range keepAll(counts) {
		if canary.keep(s.labels) || stable.keep(s.labels) {
			out[calledService(s.labels)] = analysis.Pair{}
		}
	}
	for svc := range out {
		to := func(c caller) func(labelSet) bool {
			return func(l labelSet) bool { return c.keep(l) && calledService(l) == svc }
		}
		var p analysis.Pair
		p.Canary, _ = statsOf(counts, latency, to(canary))
		p.Stable, _ = statsOf(counts, latency, to(stable))
		out[svc] = p
	}
	return out, nil
}

// BenchmarkSplitRound is one round of ticks at 1,000 services: every
// rollout splits the same four shared answers, as the Source does.
func BenchmarkSplitRound(b *testing.B) {
	const n = 1000
	ic, il, hc, hl := mesh(rand.New(rand.NewPCG(1, 2)), n)
	b.ReportMetric(float64(len(ic)+len(il)+len(hc)+len(hl)), "series")
	for b.Loop() {
		tic, til, thc, thl := newTable(ic), newTable(il), newTable(hc), newTable(hl)
		for i := range n {
			tg := targetsOf(i)[0]
			if _, err := splitInbound(tg, tic, til); err != nil {
				b.Fatal(err)
			}
			if _, err := splitHops(tg, thc, thl, tic); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSplitRoundFullScan is BenchmarkSplitRound without the index,
// scanning every series for every rollout: what the index saves.
func BenchmarkSplitRoundFullScan(b *testing.B) {
	const n = 1000
	ic, il, hc, hl := mesh(rand.New(rand.NewPCG(1, 2)), n)
	for b.Loop() {
		for i := range n {
			tg := targetsOf(i)[0]
			if _, err := scanInbound(tg, ic, il); err != nil {
				b.Fatal(err)
			}
			if _, err := scanHops(tg, hc, hl, ic); err != nil {
				b.Fatal(err)
			}
		}
	}
}
