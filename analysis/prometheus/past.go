package prometheus

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/serin-dev/serin/analysis"
)

// Readings of a past instant. The shared queries serve the present: every
// rollout's tick reads the same few answers. A reading of the past (a
// rollout's baseline, the first scrape after its first weight was written,
// or after a restart the instant in status.analysis.since) is one
// rollout's own: each rollout starts at its own second. Sending the
// mesh-wide queries for it would cost, with a thousand rollouts starting,
// a thousand answers of tens of thousands of series each. A past reading
// is instead a query of its own, selecting only the series of the
// rollout's service, which the same split then reads.

// present reports whether at is the present for the cache, so that the
// shared queries serve it.
func (s *Source) present(at time.Time) bool { return within(at, s.now(), s.ttl) }

// selector renders label matchers as extra matchers of a query
// template's selector, sorted by name: an equality for one value, a
// regular expression of the alternatives for several.
func selector(m map[string][]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		vs := slices.Compact(slices.Sorted(slices.Values(m[k])))
		if len(vs) == 1 {
			fmt.Fprintf(&b, ", %s=%s", k, strconv.Quote(vs[0]))
			continue
		}
		quoted := make([]string, len(vs))
		for i, v := range vs {
			quoted[i] = regexp.QuoteMeta(v)
		}
		fmt.Fprintf(&b, ", %s=~%s", k, strconv.Quote(strings.Join(quoted, "|")))
	}
	return b.String()
}

// inboundSelector selects the inbound series of both sides of t: for each
// label that both sides' matchers name, its value or values.
func inboundSelector(t analysis.Target) map[string][]string {
	c, st := inboundMatchers(t, t.Canary), inboundMatchers(t, t.Stable)
	out := map[string][]string{}
	for k, v := range c {
		if w, ok := st[k]; ok {
			out[k] = []string{v, w}
		}
	}
	return out
}

// inboundAt reads both sides of t at a past instant with queries of its
// own (see above).
func (s *Source) inboundAt(ctx context.Context, t analysis.Target, at time.Time) (analysis.Pair, error) {
	sel := selector(inboundSelector(t))
	var counts, latency *table
	var g errgroup.Group
	g.Go(func() (err error) {
		counts, err = s.pastVector(ctx, "inbound requests", fmt.Sprintf(InboundRequestsQuery, sel), at)
		return err
	})
	g.Go(func() (err error) {
		latency, err = s.pastVector(ctx, "inbound latency", fmt.Sprintf(InboundLatencyQuery, sel), at)
		return err
	})
	if err := g.Wait(); err != nil {
		return analysis.Pair{}, err
	}
	return splitInbound(t, counts, latency)
}

// hopsAt reads the calls of both sides of t at a past instant with
// queries of its own: those of the namespace and, in subset mode, of the
// service's canonical name; in host mode those of the workloads the
// inbound series of the same instant name.
func (s *Source) hopsAt(ctx context.Context, t analysis.Target, at time.Time) (map[string]analysis.Pair, error) {
	m := map[string][]string{}
	if t.Namespace != "" {
		m["source_workload_namespace"] = []string{t.Namespace}
	}
	if !byWorkload(t, t.Canary) && !byWorkload(t, t.Stable) {
		m["source_canonical_service"] = []string{t.Service}
	}
	sel := selector(m)
	var counts, latency, inbound *table
	var g errgroup.Group
	g.Go(func() (err error) {
		counts, err = s.pastVector(ctx, "hop requests", fmt.Sprintf(HopRequestsQuery, sel), at)
		return err
	})
	g.Go(func() (err error) {
		latency, err = s.pastVector(ctx, "hop latency", fmt.Sprintf(HopLatencyQuery, sel), at)
		return err
	})
	if byWorkload(t, t.Canary) || byWorkload(t, t.Stable) {
		g.Go(func() (err error) {
			inbound, err = s.pastVector(ctx, "inbound requests", fmt.Sprintf(InboundRequestsQuery, selector(inboundSelector(t))), at)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return splitHops(t, counts, latency, inbound)
}

// pastVector evaluates a query of one rollout at exactly at, shared with
// a caller asking the same (the flights of exactly), and returns its
// answer or ErrUnavailable.
func (s *Source) pastVector(ctx context.Context, name, query string, at time.Time) (*table, error) {
	r, err := s.wait(ctx, name, s.exactly(ctx, name, query, at))
	if err != nil {
		return nil, err
	}
	return r.samples, r.err
}
