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
	"golang.org/x/sync/singleflight"

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

// recentPast is how far back a reading is still served by a later
// shared answer (see sharedReader).
const recentPast = 30 * time.Second

// sharedReader says how the shared queries serve a reading at at, and the
// time its scope is taken at; nil when they do not, and a query of the
// rollout's own must.
//
//   - The present is served from the cache (vector).
//   - A recent past instant, no more than recentPast (or MaxStale and a
//     TTL) ago, is served by a shared answer evaluated at least a TTL
//     after it (later).
//     That is the baseline of a rollout that has just begun: the first
//     scrape after its start, read once Prometheus has ingested it. Any
//     reading at or after that scrape is a valid baseline: one a little
//     later only leaves the traffic between them out of the tests, and
//     never counts traffic from before the start. A TTL after the instant,
//     every scrape up to it is queryable (the TTL is at least the
//     ingestion lag the caller waited for), so the answer holds no sample
//     from before it. A thousand rollouts starting at once then send no
//     query of their own: at that count their four baseline queries each,
//     thousands in all, swamped Prometheus. The first tick of each can
//     come late then (a thousand new rollouts queue for their first
//     step), hence the bound of recentPast rather than one scrape: at most
//     that much traffic is left out, once.
//   - An older instant (a rollout's start read again after a controller
//     restart) is the rollout's own, and gets its own queries (inboundAt,
//     hopsAt), at most maxPastQueries at a time.
func (s *Source) sharedReader(ctx context.Context, at time.Time) (func(name, query string) (*table, error), time.Time) {
	now := s.now()
	switch {
	case s.present(at):
		return func(name, query string) (*table, error) { return s.vector(ctx, name, query, at) }, at
	case at.Before(now) && now.Sub(at) <= max(s.stale+s.ttl, s.recentPast):
		return func(name, query string) (*table, error) { return s.later(ctx, name, query, at.Add(s.ttl)) }, now
	}
	return nil, at
}

// later returns a shared answer of query evaluated at notBefore or later:
// the newest cached one when it is, else one evaluated now, shared with
// the callers of the present (joinShared) when that one is late enough.
func (s *Source) later(ctx context.Context, name, query string, notBefore time.Time) (*table, error) {
	if r := s.newest(query); r != nil && r.err == nil && !r.at.Before(notBefore) {
		return r.samples, nil
	}
	r, err := s.joinShared(ctx, name, query, s.now())
	if err == nil && r.err == nil && r.at.Before(notBefore) {
		// That flight had begun before notBefore: the next one has not.
		r, err = s.joinShared(ctx, name, query, s.now())
	}
	if err != nil {
		return nil, err
	}
	return r.samples, r.err
}

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
//
// At most maxPastQueries are sent at a time: after a controller restart
// every rollout in progress reads its own start again, and a thousand of
// them at once would keep Prometheus from answering the shared queries
// that every tick reads. A caller that gives up waiting sends nothing.
func (s *Source) pastVector(ctx context.Context, name, query string, at time.Time) (*table, error) {
	select {
	case s.past <- struct{}{}:
	case <-ctx.Done():
		return nil, s.unavailable(name, ctx.Err())
	}
	// The token is given back when the query ends, not when this caller
	// stops waiting for it: the query goes on, detached, either way.
	flight, ended := s.exactly(ctx, name, query, at), make(chan singleflight.Result, 1)
	go func() {
		r := <-flight
		<-s.past
		ended <- r
	}()
	r, err := s.wait(ctx, name, ended)
	if err != nil {
		return nil, err
	}
	return r.samples, r.err
}
