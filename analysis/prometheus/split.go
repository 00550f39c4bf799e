package prometheus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/serin-dev/serin/analysis"
)

// sample is one series of a shared query: its labels and finite value.
type sample struct {
	labels labelSet
	value  float64
}

// Inbound returns the cumulative requests, 5xx errors and latency buckets
// each side of t has received, as of at, from the two shared inbound
// queries; P99Ms is the p99 of those buckets, so of all the traffic since
// the counters began. It wraps analysis.ErrNoData naming the side and its
// matchers when a side has no series, and analysis.ErrUnavailable when
// Prometheus cannot be asked.
func (s *Source) Inbound(ctx context.Context, t analysis.Target, at time.Time) (analysis.Pair, error) {
	read, scopeAt := s.sharedReader(ctx, at)
	if read == nil {
		return s.inboundAt(ctx, t, at)
	}
	ns := s.scope(t, scopeAt)
	var counts, latency *table
	var g errgroup.Group // no early cancel: the shared queries run to the end anyway
	g.Go(func() (err error) {
		counts, err = read("inbound requests", MeshQuery(InboundRequestsQuery, ns))
		return err
	})
	g.Go(func() (err error) {
		latency, err = read("inbound latency", MeshQuery(InboundLatencyQuery, ns))
		return err
	})
	if err := g.Wait(); err != nil {
		return analysis.Pair{}, err
	}
	return splitInbound(t, counts, latency)
}

// HeldInbound returns the requests and errors of each side of t in the
// newest shared inbound answer held, without asking Prometheus (the latency
// buckets are left out); ok is false when none is held, it was a failure,
// or a side has no series in it. It is analysis.HeldSource.
func (s *Source) HeldInbound(t analysis.Target) (analysis.Pair, bool) {
	r := s.newest(MeshQuery(InboundRequestsQuery, s.scope(t, s.now())))
	if r == nil || r.err != nil || r.samples == nil {
		return analysis.Pair{}, false
	}
	p, err := splitInbound(t, r.samples, nil)
	return p, err == nil
}

var _ analysis.HeldSource = (*Source)(nil)

// Hops returns the cumulative calls each side of t has made downstream, as
// of at, keyed by the called service's short name (its canonical service,
// or its service name when that is unknown), with the same fields as
// Inbound. A hop seen on one side only still appears, with zero Stats and
// a NaN p99 on the other; a service that has called nothing gets an empty
// map.
//
// In subset mode a side's calls are those reported with its namespace,
// canonical service (t.Service) and version. In host mode, or when a side
// has Match, the caller's version label cannot be relied on, so its calls
// are those of the workloads that its inbound series name
// (destination_workload): Hops then also uses the shared inbound query and
// wraps analysis.ErrNoData when a side has no inbound series.
func (s *Source) Hops(ctx context.Context, t analysis.Target, at time.Time) (map[string]analysis.Pair, error) {
	read, scopeAt := s.sharedReader(ctx, at)
	if read == nil {
		return s.hopsAt(ctx, t, at)
	}
	// One scope for the hop and inbound queries: the workloads found in
	// the inbound series of these namespaces report their calls with the
	// same namespace as source_workload_namespace.
	ns := s.scope(t, scopeAt)
	var counts, latency, inbound *table
	var g errgroup.Group // no early cancel: the shared queries run to the end anyway
	g.Go(func() (err error) {
		counts, err = read("hop requests", MeshQuery(HopRequestsQuery, ns))
		return err
	})
	g.Go(func() (err error) {
		latency, err = read("hop latency", MeshQuery(HopLatencyQuery, ns))
		return err
	})
	if byWorkload(t, t.Canary) || byWorkload(t, t.Stable) {
		g.Go(func() (err error) {
			inbound, err = read("inbound requests", MeshQuery(InboundRequestsQuery, ns))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return splitHops(t, counts, latency, inbound)
}

// inboundMatchers returns the label equalities that select the inbound
// series of one side: side.Match when set; in subset mode the host and
// version; in host mode the service name and namespace, or the host itself
// when it is a cluster FQDN.
func inboundMatchers(t analysis.Target, side analysis.Side) map[string]string {
	if len(side.Match) > 0 {
		return side.Match
	}
	m := map[string]string{}
	switch {
	case !t.HostMode:
		m["destination_service"] = side.Host
		m["destination_version"] = side.Version
	case isFQDN(side.Host):
		m["destination_service"] = side.Host
	default:
		// "name" or "name.namespace": the namespace of the target wins.
		parts := strings.Split(side.Host, ".")
		m["destination_service_name"] = parts[0]
		if len(parts) > 1 && parts[1] != "" {
			m["destination_workload_namespace"] = parts[1]
		}
	}
	if t.Namespace != "" {
		m["destination_workload_namespace"] = t.Namespace
	}
	return m
}

// isFQDN reports whether host is a cluster FQDN such as
// checkout.shop.svc.cluster.local, the form of destination_service.
func isFQDN(host string) bool {
	return strings.Contains(host, ".svc.") || strings.HasSuffix(host, ".svc")
}

// matches reports whether labels has every label of m with its value.
func matches(labels labelSet, m map[string]string) bool {
	for k, v := range m {
		if string(labels.get(model.LabelName(k))) != v {
			return false
		}
	}
	return true
}

// describe names one side for messages: "checkout v2" in subset mode,
// "checkout canary" otherwise.
func describe(t analysis.Target, side analysis.Side, role string) string {
	if !t.HostMode && len(side.Match) == 0 && side.Version != "" {
		return t.Service + " " + side.Version
	}
	return t.Service + " " + role
}

// formatMatchers renders matchers sorted by name: a="x", b="y".
func formatMatchers(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// splitInbound measures both sides of t from the shared inbound counts
// and latency buckets.
func splitInbound(t analysis.Target, counts, latency *table) (analysis.Pair, error) {
	var pair analysis.Pair
	var errs []error
	for _, side := range []struct {
		role string
		side analysis.Side
		out  *analysis.Stats
	}{{"canary", t.Canary, &pair.Canary}, {"stable", t.Stable, &pair.Stable}} {
		m := inboundMatchers(t, side.side)
		keep := func(l labelSet) bool { return matches(l, m) }
		st, found := statsOf(counts.candidates(m), latency.candidates(m), keep)
		if !found {
			errs = append(errs, fmt.Errorf("no inbound series for %s (%s): %w",
				describe(t, side.side, side.role), formatMatchers(m), analysis.ErrNoData))
			continue
		}
		*side.out = st
	}
	if counts != nil {
		pair.At = counts.at
	}
	return pair, errors.Join(errs...)
}

// statsOf adds up the counters of the series that keep accepts (errors
// are the 5xx codes) and computes the p99 of their latency buckets. found
// is false when no count series was accepted.
func statsOf(counts, latency []sample, keep func(labelSet) bool) (st analysis.Stats, found bool) {
	for _, s := range counts {
		if !keep(s.labels) {
			continue
		}
		found = true
		st.Requests += s.value
		if is5xx(string(s.labels.get("response_code"))) {
			st.Errors += s.value
		}
	}
	st.P99Ms, st.Buckets = p99(latency, keep)
	return st, found
}

// is5xx reports whether an HTTP response code is a server error.
func is5xx(code string) bool {
	return len(code) == 3 && code[0] == '5'
}

// p99 adds up the latency buckets of the series that keep accepts by le
// and returns their 99th percentile (NaN without usable buckets) and the
// buckets, sorted by bound.
func p99(latency []sample, keep func(labelSet) bool) (float64, []analysis.Bucket) {
	byLE := map[float64]float64{}
	for _, s := range latency {
		if !keep(s.labels) {
			continue
		}
		le, err := strconv.ParseFloat(string(s.labels.get(model.BucketLabel)), 64)
		if err != nil {
			continue // a bucket without a valid bound: histogram_quantile ignores it too
		}
		byLE[le] += s.value
	}
	buckets := make([]bucket, 0, len(byLE))
	for le, n := range byLE {
		buckets = append(buckets, bucket{upperBound: le, count: n})
	}
	q := bucketQuantile(0.99, buckets) // sorts buckets
	out := make([]analysis.Bucket, len(buckets))
	for i, b := range buckets {
		out[i] = analysis.Bucket{UpperMs: b.upperBound, Count: b.count}
	}
	return q, out
}
