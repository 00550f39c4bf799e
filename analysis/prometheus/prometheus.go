// Package prometheus is the analysis.MetricSource that reads Istio's
// standard metrics from Prometheus.
//
// Inbound and Hops return cumulative counters: the raw sums of
// istio_requests_total and of istio_request_duration_milliseconds_bucket as
// they stand at the time asked for, with no rate(), no increase() and so
// no extrapolation (see InboundRequestsQuery for why). The caller diffs two
// readings itself; it may ask for a past instant (a rollout's analysis
// start, after a controller restart), which is answered for that instant.
//
// Inbound and Hops do not send a query per rollout. Four shared queries
// (see InboundRequestsQuery and the others) are cached for Options.CacheTTL
// and shared by every concurrent caller, then split per rollout in Go, so
// that one analysis tick costs at most four queries per evaluation time
// whether one rollout or a hundred are analysed. The shared queries select
// only the namespaces that have rollouts under analysis, which the Source
// learns from the targets it is asked about and forgets after
// ForgetNamespaceAfter, so that on a large mesh each answer holds only
// those namespaces' workloads; they select the whole mesh when a target's
// namespace cannot be told. Scalar runs custom queries uncached.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/singleflight"

	"github.com/serin-dev/serin/analysis"
)

// Defaults for the Options left zero.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultCacheTTL = time.Second
)

// Options configures a Source.
type Options struct {
	// Address is Prometheus' base URL, e.g. http://127.0.0.1:9090. It is
	// required and must be an http or https URL with a host.
	Address string
	// Timeout bounds each query; zero means DefaultTimeout.
	Timeout time.Duration
	// CacheTTL is how long the result of each shared query is reused;
	// zero means DefaultCacheTTL. A namespace seen for the first time joins
	// the scope of the shared queries one CacheTTL later.
	CacheTTL time.Duration
	// RoundTripper, when set, carries the HTTP requests (authentication,
	// TLS, tests); nil means client_golang's default.
	RoundTripper http.RoundTripper
	// MaxStale is how old the newest answer of a shared query may be and
	// still serve a reading of the present as current, one refresh
	// running behind it once it is as old as it took, and how long a
	// shared query may take; zero means two CacheTTLs. An answer that
	// took longer than half of MaxStale to arrive serves as current for
	// twice as long as it took (up to 30 s). Past that, a refresh runs
	// at once, and while it does, a reading is still served the answer
	// held when it is a success at most 30 s old, rather than wait (see
	// vector). A failed refresh is never hidden behind an older answer.
	// It is kept short by default because the inbound and hop answers
	// refresh independently, and the calls-per-request test compares the
	// two: the older the answers, the further apart their instants can
	// drift within a tick (a lag that, with weights that only go up,
	// makes the canary's share of the calls lower, never higher).
	MaxStale time.Duration
	// Observer, when set, is told of every query sent, for the
	// controller's own metrics; nil observes nothing.
	Observer Observer
}

// Observer is told of each query a Source sends to Prometheus. It is
// declared here, where it is used, so that this package needs nothing of
// whoever counts (cmd wires rollout's query metrics in).
type Observer interface {
	// ObserveQuery records one query that took d and ended with err, nil
	// on success (an empty answer is a success).
	ObserveQuery(d time.Duration, err error)
}

// sharedTimeout is the time a shared query is given, and the oldest a
// slow answer may be and still serve the present (see staleBound): on a
// large mesh under load one answer takes seconds to compute, and a fetch
// cut short at the 2 s of a custom query would leave every tick waiting on
// the next.
const sharedTimeout = 30 * time.Second

// Source is an analysis.MetricSource backed by Prometheus. It is safe for
// concurrent use.
type Source struct {
	addr    string
	api     v1.API
	client  api.Client // for the shared queries, whose answers decodeVector reads
	timeout time.Duration
	ttl     time.Duration
	stale   time.Duration    // Options.MaxStale
	now     func() time.Time // wall clock for cache expiry and forgetting namespaces; tests replace it
	obs     Observer         // Options.Observer, or nil

	queries atomic.Int64
	flights singleflight.Group
	// refreshing counts the callers of refreshes under way, so that tests
	// can wait for the queries sent in the background.
	refreshing sync.WaitGroup
	mu         sync.Mutex
	// cache holds by query text (which includes the namespaces) the
	// results younger than the TTL, one per evaluation time in use, so
	// that a reading of the past does not evict the one of now.
	cache map[string][]*result
	// namespaces are those of the targets asked about, for scope; guarded
	// by mu.
	namespaces map[string]nsSeen
	// past holds a token for each reading of the past under way (see
	// pastVector).
	past chan struct{}
	// recentPast is how far back a later shared answer serves a reading
	// (see sharedReader); tests shorten it.
	recentPast time.Duration
	// sets shares the label sets of the series between answers.
	sets *labelSets
}

// maxPastQueries bounds the queries of past readings sent at once.
const maxPastQueries = 4

var _ analysis.MetricSource = (*Source)(nil)

// result is the outcome of one shared query, shared through the cache.
type result struct {
	samples *table
	err     error
	at      time.Time     // evaluation time asked for
	fetched time.Time     // when the answer arrived, by Source.now
	took    time.Duration // how long it took to arrive
}

// New checks o and returns a Source. It sends nothing to Prometheus yet.
func New(o Options) (*Source, error) {
	if err := checkAddress(o.Address); err != nil {
		return nil, err
	}
	if o.Timeout < 0 || o.CacheTTL < 0 || o.MaxStale < 0 {
		return nil, fmt.Errorf("prometheus %s: negative timeout (%v) or cache TTL (%v)", o.Address, o.Timeout, o.CacheTTL)
	}
	client, err := api.NewClient(api.Config{Address: o.Address, RoundTripper: o.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", o.Address, err)
	}
	s := &Source{
		addr:       o.Address,
		api:        v1.NewAPI(client),
		client:     client,
		timeout:    o.Timeout,
		ttl:        o.CacheTTL,
		now:        time.Now,
		obs:        o.Observer,
		cache:      map[string][]*result{},
		namespaces: map[string]nsSeen{},
		past:       make(chan struct{}, maxPastQueries),
		recentPast: recentPast,
		sets:       newLabelSets(maxLabelSets),
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.ttl == 0 {
		s.ttl = DefaultCacheTTL
	}
	s.stale = max(o.MaxStale, 2*s.ttl)
	return s, nil
}

// checkAddress refuses an address that is not an absolute http(s) URL.
func checkAddress(addr string) error {
	if addr == "" {
		return errors.New("prometheus address is required")
	}
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("prometheus address %q: %w", addr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("prometheus address %q: want an http or https URL with a host, e.g. http://127.0.0.1:9090", addr)
	}
	return nil
}

// Queries returns how many queries this Source has sent to Prometheus.
func (s *Source) Queries() int64 { return s.queries.Load() }

// Scalar runs query at at, uncached, and returns its value: a scalar, or
// the value of a vector with exactly one series. It wraps analysis.ErrNoData
// for an empty vector or a NaN or infinite value, analysis.ErrUnavailable
// when Prometheus cannot be asked or answers with another type, and returns
// a plain error naming the count when the vector has several series.
func (s *Source) Scalar(ctx context.Context, query string, at time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	val, err := s.query(ctx, query, at)
	if err != nil {
		return 0, s.unavailable(query, err)
	}
	var v float64
	switch val := val.(type) {
	case *model.Scalar:
		v = float64(val.Value)
	case model.Vector:
		if len(val) > 1 {
			return 0, fmt.Errorf("query %q at Prometheus %s returned %d series, want one (aggregate it, e.g. with sum)", query, s.addr, len(val))
		}
		if len(val) == 0 {
			return 0, fmt.Errorf("query %q: empty result: %w", query, analysis.ErrNoData)
		}
		v = float64(val[0].Value)
	default:
		return 0, s.unavailable(query, fmt.Errorf("answer is a %s, want a scalar or a vector", val.Type()))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("query %q: value is %v: %w", query, v, analysis.ErrNoData)
	}
	return v, nil
}

// query sends one query, counts it and tells the Observer.
func (s *Source) query(ctx context.Context, query string, at time.Time) (model.Value, error) {
	return counted(s, func() (model.Value, error) { return s.send(ctx, query, at) })
}

// counted runs send, one query to Prometheus, counts it and tells the
// Observer how long it took and how it ended.
func counted[T any](s *Source, send func() (T, error)) (T, error) {
	s.queries.Add(1)
	start := time.Now()
	v, err := send()
	if s.obs != nil {
		s.obs.ObserveQuery(time.Since(start), err)
	}
	return v, err
}

func (s *Source) send(ctx context.Context, query string, at time.Time) (model.Value, error) {
	val, _, _, err := s.api.Query(ctx, query, at)
	if err != nil {
		return nil, withDetail(err)
	}
	if val == nil {
		return nil, errors.New("answer has no result")
	}
	return val, nil
}

// maxDetail bounds how much of an error body goes into a message.
const maxDetail = 200

// withDetail adds the body of an HTTP error answer, which client_golang
// keeps out of its message, e.g. "server error: 503: shutting down".
func withDetail(err error) error {
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) {
		return err
	}
	detail := strings.TrimSpace(apiErr.Detail)
	if detail == "" {
		return err
	}
	if len(detail) > maxDetail {
		detail = detail[:maxDetail] + "..."
	}
	return fmt.Errorf("%w: %s", err, detail)
}

// unavailable wraps a failed query with the address, ErrUnavailable and the
// cause.
func (s *Source) unavailable(what string, cause error) error {
	return fmt.Errorf("query Prometheus at %s: %s: %w: %w", s.addr, what, analysis.ErrUnavailable, cause)
}

// vector returns the samples of a shared query evaluated at at: from the
// cache when a result younger than the TTL was evaluated within the TTL of
// at, otherwise from one query shared with every concurrent caller. The
// shared query runs detached from the caller's cancellation (bounded by
// Options.Timeout instead), so that one caller giving up does not fail the
// others; a failure is cached like a result, so that an unavailable
// Prometheus is asked once per TTL, not once per rollout.
func (s *Source) vector(ctx context.Context, name, query string, at time.Time) (*table, error) {
	if r := s.lookup(query, at); r != nil {
		return r.samples, r.err
	}
	if r := s.recent(query, at); r != nil {
		// A reading of the present is answered from the last result, at
		// most MaxStale old, while one refresh runs behind it: a tick
		// never waits on a fetch once the query is warm, however slow
		// Prometheus is to answer a large mesh. The refresh waits until
		// the answer is as old as it took to come: a query that takes
		// Prometheus seconds (the latency buckets of a thousand services)
		// then keeps it busy half the time at most, not all the time, and
		// the small queries the error checks read get their answers.
		if s.now().Sub(r.fetched) >= r.took {
			s.refresh(ctx, name, query)
		}
		return r.samples, r.err
	}
	// A reader that finds the newest answer too old to serve outright
	// (the refresh behind it is late: the answer of a thousand services
	// can take Prometheus longer than its stale bound) is served it all
	// the same when it is a success at most sharedTimeout old, and the
	// refresh goes on: a tick never waits on a fetch once the query is
	// warm. The tests find nothing new in it (the Tracker skips an answer
	// no newer than its last), where an error would make every check it
	// feeds Inconclusive for want of data, and back on the next tick, a
	// status write each way for nothing that changed. A refresh that
	// fails is stored and said (recent and held serve no older answer
	// past it), and a hung one fails at sharedTimeout, so no answer older
	// than that is ever served.
	if held := s.held(query); held != nil {
		s.refresh(ctx, name, query)
		return held.samples, nil
	}
	// The callers of one tick ask for nearly, not exactly, the same time
	// (each rollout reads its own clock), so they share one flight per
	// query text, which the first of them leads.
	r, err := s.joinShared(ctx, name, query, at)
	if err == nil && !within(r.at, at, s.staleBound(r)) {
		// That flight began long before at: join the next, shared
		// likewise. A query of this caller's own time would be one more
		// answer of the whole mesh for Prometheus to compute, from every
		// caller that came late, just when it is slow to answer.
		r, err = s.joinShared(ctx, name, query, at)
	}
	if err != nil {
		return nil, err
	}
	return r.samples, r.err
}

// held returns the newest result of query when it is a success at most
// sharedTimeout old, or nil (see vector).
func (s *Source) held(query string) *result {
	r := s.newest(query)
	if r == nil || r.err != nil || r.samples == nil || s.now().Sub(r.fetched) > sharedTimeout {
		return nil
	}
	return r
}

// joinShared joins the flight of query under way, or leads one evaluated
// at at, and waits for its result: one flight per query text, whatever
// time each caller asked for. The flight runs detached from the caller's
// cancellation.
func (s *Source) joinShared(ctx context.Context, name, query string, at time.Time) (*result, error) {
	return s.wait(ctx, name, s.flights.DoChan(query, func() (any, error) {
		return (<-s.exactly(context.WithoutCancel(ctx), name, query, at)).Val, nil
	}))
}

// newest returns the newest cached result of query, or nil.
func (s *Source) newest(query string) *result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newestLocked(query)
}

// newestLocked is newest for a caller that holds mu.
func (s *Source) newestLocked(query string) *result {
	var newest *result
	for _, r := range s.cache[query] {
		if newest == nil || r.fetched.After(newest.fetched) {
			newest = r
		}
	}
	return newest
}

// recent returns the newest result of query when at is the present, that
// result is younger than MaxStale and is not a failure, or nil.
func (s *Source) recent(query string, at time.Time) *result {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !within(at, now, s.ttl) {
		return nil
	}
	newest := s.newestLocked(query)
	// The newest answer a failure: say so (through lookup, or by asking
	// again), never hide it behind an older success.
	if newest == nil || newest.err != nil || now.Sub(newest.fetched) >= s.staleBound(newest) || !within(newest.at, at, s.staleBound(newest)) {
		return nil
	}
	return newest
}

// staleBound is how old r may be and still serve a reading of the
// present: MaxStale, or twice as long as r took to arrive when that is
// longer. An answer that took seconds to compute is that old when it
// arrives, and the next one will be too: waiting for it gives no fresher
// data, and holds the tick.
func (s *Source) staleBound(r *result) time.Duration {
	return min(max(s.stale, 2*r.took), sharedTimeout)
}

// refresh evaluates query at the present in the background, once however
// many callers ask, and stores the result for the next readers. It is
// the query's one shared flight (joinShared's): a reader that finds the
// newest answer too old while the refresh runs (it took longer than the
// last) joins it, rather than sending the whole mesh's query a second
// time just when Prometheus is slow to answer it.
func (s *Source) refresh(ctx context.Context, name, query string) {
	s.refreshing.Add(1)
	ch := s.flights.DoChan(query, func() (any, error) {
		return (<-s.exactly(context.WithoutCancel(ctx), name, query, s.now())).Val, nil
	})
	go func() { <-ch; s.refreshing.Done() }()
}

// exactly returns the flight that evaluates query at exactly at, joining
// one under way. Every query goes through such a flight and stores its
// result before the flight ends, so that callers for the same time never
// send the same query twice, whichever flight of vector they came by.
func (s *Source) exactly(ctx context.Context, name, query string, at time.Time) <-chan singleflight.Result {
	return s.flights.DoChan(query+" @ "+at.UTC().Format(time.RFC3339Nano), func() (any, error) {
		if r := s.lookup(query, at); r != nil { // stored while we queued
			return r, nil
		}
		r := s.fetch(context.WithoutCancel(ctx), name, query, at)
		s.store(query, r)
		return r, nil
	})
}

// wait returns the result of a flight, or ErrUnavailable when ctx ends
// first.
func (s *Source) wait(ctx context.Context, name string, ch <-chan singleflight.Result) (*result, error) {
	select {
	case res := <-ch:
		return res.Val.(*result), nil
	case <-ctx.Done():
		return nil, s.unavailable(name, ctx.Err())
	}
}

// fetch runs a shared query and keeps its finite samples.
//
// A shared query may take up to sharedTimeout (not only
// Options.Timeout): on a large mesh, under load, one answer can take
// seconds to compute. A caller that waits for it is bounded by its own
// ctx (a tick's budget); the fetch goes on and serves the next ticks.
func (s *Source) fetch(ctx context.Context, name, query string, at time.Time) *result {
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, s.stale, sharedTimeout))
	defer cancel()
	r := &result{at: at}
	began := s.now()
	rows, err := s.fetchRows(ctx, query, at, packedBy(query))
	if err == nil {
		r.samples = newTable(rows)
		r.samples.at = at
	} else {
		r.err = s.unavailable(name, err)
	}
	r.fetched = s.now()
	r.took = r.fetched.Sub(began)
	return r
}

// lookup returns a cached result of query that is still fresh and was
// evaluated close enough to at, or nil.
func (s *Source) lookup(query string, at time.Time) *result {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, r := range s.cache[query] {
		if now.Sub(r.fetched) < s.ttl && within(r.at, at, s.ttl) {
			return r
		}
	}
	return nil
}

// store caches r under query and drops what no reader can use any more:
// per query, the results older than the TTL except the newest (which
// serves recent), and that one too once it is older than MaxStale. A
// shared answer of a large mesh is tens of megabytes; the cache holds
// about one per query text in use.
func (s *Source) store(query string, r *result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.cache[query] = append(s.cache[query], r)
	for q, rs := range s.cache {
		newest := rs[0]
		for _, x := range rs {
			if x.fetched.After(newest.fetched) {
				newest = x
			}
		}
		rs = slices.DeleteFunc(rs, func(old *result) bool {
			age := now.Sub(old.fetched)
			return age >= s.staleBound(old) || (age >= s.ttl && old != newest)
		})
		if len(rs) == 0 {
			delete(s.cache, q)
			continue
		}
		s.cache[q] = rs
	}
}

// within reports whether a and b are less than d apart.
func within(a, b time.Time, d time.Duration) bool {
	diff := a.Sub(b)
	return diff > -d && diff < d
}
