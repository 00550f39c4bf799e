// Package jaeger implements analysis.TraceSource on Jaeger's HTTP query
// API: it fetches the recent traces through the analysed service, splits
// them by the service's version (canary or stable) and measures every
// calling → called edge that touches the service.
//
// It reads the API v3 endpoint /api/v3/traces, not the v1 /api/traces. API
// v3 is Jaeger's documented, stable query API and answers in OTLP JSON,
// which carries exactly what edges need: parentSpanId, the span kind, the
// status code and the resource's service.name and service.version. The v1
// endpoint is the UI's internal API: it would need CHILD_OF references
// resolved, service.version dug out of process tags and the kind and status
// reconstructed from tags.
//
// Jaeger v1.76 answers a search with one {"result": TracesData} object that
// holds the spans of every trace found (including their other services'
// spans), and "no traces" with HTTP 404 and
// {"error":{"httpCode":404,"message":"No traces found"}}. A wrong path is
// answered with the UI's HTML page and HTTP 200, which fails to decode and is
// reported as unavailable. See decodeTraces for the shapes accepted.
//
// Canary and stable traces are told apart by the service.version of the
// analysed service's spans (Side.Version). In host mode with no versions
// they are told apart by host. The analysed service's spans may be named
// Target.Service on both sides or after each side's host (checkout-canary,
// checkout-primary), so all these names are searched and renamed to
// Target.Service in the edges. A trace's side is the side host to which the
// mesh routed the calls into the service (Envoy's upstream_cluster on the
// caller's CLIENT span), else the one its service.name names; see matcher.
// A trace that went through neither side, or through both, is skipped.
//
// With many rollouts in progress the searches, not the edges, are the cost
// (Jaeger takes 75–120 ms a search even for a service without traces), so a
// Source bounds and shares them (see share.go): answers are aligned to a
// grid of CacheTTL steps, so that callers asking in the same step share one
// search and a caller's consecutive ranges still count every trace once; at
// most MaxInFlight requests are in flight at once; a service Jaeger does not
// list is not searched; and a service whose searches keep finding nothing
// or failing is searched less and less often, up to every 30 s.
package jaeger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// Defaults for Options.
const (
	DefaultMaxTraces   = 200
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 4
	// DefaultCacheTTL is the default analysis interval: rollouts ticking
	// in the same interval share their searches.
	DefaultCacheTTL = 2 * time.Second
)

// maxBody bounds how much of one answer is read. 200 traces of a few dozen
// spans are well under a megabyte.
const maxBody = 64 << 20

// Options configure a Source. The zero value of every field but QueryURL
// means its default.
type Options struct {
	// QueryURL is the base URL of Jaeger's query service, e.g.
	// http://127.0.0.1:16686. Required.
	QueryURL string
	// MaxTraces bounds the traces fetched per Edges call, which bounds the
	// work per tick (default 200). Jaeger returns the most recent ones. In
	// host mode, where up to three service names are searched, each search
	// gets an equal share of what the earlier ones left.
	MaxTraces int
	// Timeout bounds each HTTP request once it is sent, and the wait for a
	// slot to send it in (default 2s).
	Timeout time.Duration
	// MaxInFlight bounds the requests in flight to Jaeger at once, searches
	// and service lists alike (default 4), so that a thousand rollouts
	// ticking together queue here rather than pile onto Jaeger. A caller
	// waiting for a slot gives up when its ctx ends.
	MaxInFlight int
	// CacheTTL is the step of the grid searches are aligned to, and so how
	// long one search serves every caller that asks in the same step
	// (default 2s). Traces that started in the step a range ends in are
	// answered by the next call, whose since is this call's until: a
	// longer step shares more and delays traces more.
	CacheTTL time.Duration
	// HTTPClient is used for the requests; nil means a new http.Client.
	HTTPClient *http.Client
	// Now returns the current time for the cache and the backoff; nil
	// means time.Now. Tests set it to step through a backoff without
	// sleeping.
	Now func() time.Time
	// Observer, when set, is told of every request sent to Jaeger
	// (searches and service lists), for the controller's own metrics; nil
	// observes nothing.
	Observer Observer
}

// Observer is told of each request a Source sends to Jaeger. It is
// declared here, where it is used, so that this package needs nothing of
// whoever counts (cmd wires rollout's query metrics in).
type Observer interface {
	// ObserveQuery records one request that took d, answer read
	// included, and ended with err, nil on success ("no traces found" is
	// a success).
	ObserveQuery(d time.Duration, err error)
}

// Source is an analysis.TraceSource reading Jaeger's query API. It is safe
// for concurrent use, and meant to be shared by every rollout: sharing it
// is what lets rollouts of one service share searches.
type Source struct {
	base      *url.URL
	maxTraces int
	timeout   time.Duration
	step      time.Duration
	client    *http.Client
	now       func() time.Time
	obs       Observer      // Options.Observer, or nil
	slots     chan struct{} // one token per request in flight
	services  serviceList
	searches  searchCache
	counts    counters
}

// counters count what the Source did, for tests and the scale benchmark.
type counters struct {
	searches, lists, shared, skipped atomic.Int64
}

var _ analysis.TraceSource = (*Source)(nil)

// New checks o and returns a Source. A missing or unparsable QueryURL, or a
// negative MaxTraces, Timeout, MaxInFlight or CacheTTL, is an error that
// names it.
func New(o Options) (*Source, error) {
	if o.QueryURL == "" {
		return nil, errors.New("jaeger: QueryURL is required")
	}
	u, err := url.Parse(o.QueryURL)
	if err != nil {
		return nil, fmt.Errorf("jaeger: bad QueryURL %q: %w", o.QueryURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("jaeger: bad QueryURL %q: want http://host:port or https://host:port", o.QueryURL)
	}
	switch {
	case o.MaxTraces < 0:
		return nil, fmt.Errorf("jaeger: bad MaxTraces %d: must not be negative", o.MaxTraces)
	case o.Timeout < 0:
		return nil, fmt.Errorf("jaeger: bad Timeout %v: must not be negative", o.Timeout)
	case o.MaxInFlight < 0:
		return nil, fmt.Errorf("jaeger: bad MaxInFlight %d: must not be negative", o.MaxInFlight)
	case o.CacheTTL < 0:
		return nil, fmt.Errorf("jaeger: bad CacheTTL %v: must not be negative", o.CacheTTL)
	}
	s := &Source{
		base: u, client: o.HTTPClient, now: o.Now, obs: o.Observer,
		maxTraces: cmp.Or(o.MaxTraces, DefaultMaxTraces),
		timeout:   cmp.Or(o.Timeout, DefaultTimeout),
		step:      cmp.Or(o.CacheTTL, DefaultCacheTTL),
		slots:     make(chan struct{}, cmp.Or(o.MaxInFlight, DefaultMaxInFlight)),
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Searches returns how many trace searches the Source has sent to Jaeger.
func (s *Source) Searches() int64 { return s.counts.searches.Load() }

// ServiceLists returns how many times the Source has asked Jaeger for its
// list of services.
func (s *Source) ServiceLists() int64 { return s.counts.lists.Load() }

// Shared returns how many searches a caller needed were answered by a
// search another caller (or an earlier call) had made, in flight or cached.
func (s *Source) Shared() int64 { return s.counts.shared.Load() }

// Skipped returns how many searches a caller needed were not sent: the
// service is not one Jaeger lists, or it is backed off after finding
// nothing or failing.
func (s *Source) Skipped() int64 { return s.counts.skipped.Load() }

// Step is the grid searches are aligned to (Options.CacheTTL); see
// analysis.SteppedTraceSource.
func (s *Source) Step() time.Duration { return s.step }

var _ analysis.SteppedTraceSource = (*Source)(nil)

// Edges implements analysis.TraceSource. It fetches at most MaxTraces
// traces through the analysed service whose first span of the service
// started in [since, until], both aligned down to CacheTTL steps (see
// share.go), tells canary from stable traces (see matcher) and returns the
// statistics of each edge from or to t.Service. Only cross-service
// parent → child links count; a callee without spans of its own does not
// appear. CanaryTraceID names the trace of the slowest failed canary call
// on the edge, or of the slowest canary call when none failed.
//
// It wraps analysis.ErrNoData when no trace was found (a service Jaeger
// does not list is not searched and says so the same way), when none went
// through either side, or when no call touched the service; and
// analysis.ErrUnavailable, with the URL and the cause, when Jaeger could not
// be asked, its answer did not parse, or ctx ended first. It never returns
// an empty map without an error.
func (s *Source) Edges(ctx context.Context, t analysis.Target, since, until time.Time) (map[analysis.Edge]analysis.EdgePair, error) {
	m, err := newMatcher(t)
	if err != nil {
		return nil, err
	}
	if until.Before(since) {
		return nil, fmt.Errorf("jaeger: %s/%s: time range ends (%s) before it starts (%s)",
			t.Namespace, t.Service, until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	from, to := s.align(since), s.align(until)
	if !from.Before(to) {
		return nil, fmt.Errorf("jaeger: no traces through %s yet: those since %s are counted once their %v step has ended: %w",
			t.Service, from.UTC().Format(time.RFC3339Nano), s.step, analysis.ErrNoData)
	}
	names := s.searchNames(ctx, m)
	window := func(names []string) string {
		return fmt.Sprintf("%s between %s and %s", listNames(names),
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("jaeger: no traces through %s (not a service Jaeger lists): %w", window(m.services()), analysis.ErrNoData)
	}
	traces, err := s.fetch(ctx, names, from, to)
	if err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, fmt.Errorf("jaeger: no traces through %s: %w", window(names), analysis.ErrNoData)
	}
	edges, n := computeEdges(traces, m)
	switch {
	case n.canary+n.stable == 0:
		return nil, fmt.Errorf("jaeger: none of %d traces through %s went through canary %q or stable %q: %w",
			n.traces, window(names), m.canary, m.stable, analysis.ErrNoData)
	case len(edges) == 0:
		return nil, fmt.Errorf("jaeger: no calls from or to %s in %d traces (%d canary, %d stable) through %s: %w",
			m.service, n.traces, n.canary, n.stable, window(names), analysis.ErrNoData)
	}
	return edges, nil
}

// fetch gets the traces of each service name in turn and returns them
// grouped by trace ID. A trace found under several names (a host-mode trace
// that went through checkout and checkout-canary) is kept once, as first
// found. The names share MaxTraces: each search asks for an equal share of
// what the earlier ones left, so that names without traces (one of the two
// host-mode conventions) leave their share to the others, and no more than
// MaxTraces distinct traces are fetched.
func (s *Source) fetch(ctx context.Context, names []string, from, to time.Time) (map[string][]span, error) {
	traces := map[string][]span{}
	for i, name := range names {
		left := s.maxTraces - len(traces)
		if left <= 0 {
			break
		}
		found, err := s.traces(ctx, name, from, to, max(1, left/(len(names)-i)))
		if err != nil {
			return nil, err
		}
		for id, trace := range found {
			if _, dup := traces[id]; !dup {
				traces[id] = trace
			}
		}
	}
	return traces, nil
}

// listNames writes service names for a message: "a", "a and b", "a, b and c".
func listNames(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// tracesURL is the API v3 search for traces of service in [since, until].
func (s *Source) tracesURL(service string, since, until time.Time, limit int) *url.URL {
	u := s.base.JoinPath("api", "v3", "traces")
	q := url.Values{}
	q.Set("query.service_name", service)
	q.Set("query.start_time_min", since.UTC().Format(time.RFC3339Nano))
	q.Set("query.start_time_max", until.UTC().Format(time.RFC3339Nano))
	q.Set("query.num_traces", strconv.Itoa(limit))
	u.RawQuery = q.Encode()
	return u
}

// find runs one search and returns the spans of the traces found; none
// (and no error) when Jaeger says it found no traces. Every other failure
// wraps analysis.ErrUnavailable and names the URL.
func (s *Source) find(ctx context.Context, service string, since, until time.Time, limit int) ([]span, error) {
	u := s.tracesURL(service, since, until, limit)
	var spans []span
	err := s.get(ctx, u, &s.counts.searches, func(resp *http.Response) error {
		body := io.LimitReader(resp.Body, maxBody)
		switch resp.StatusCode {
		case http.StatusOK:
			var err error
			spans, err = decodeTraces(body)
			return err
		case http.StatusNotFound:
			text := readSnippet(body)
			if isNoTraces(text) {
				return nil
			}
			return fmt.Errorf("HTTP 404 (is this Jaeger with API v3?): %s", text)
		default:
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, readSnippet(body))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("jaeger: GET %s: %w: %w", u.Redacted(), analysis.ErrUnavailable, err)
	}
	return spans, nil
}

// get sends GET u once a slot among MaxInFlight is free, counting it in
// sent, within Timeout from when it is sent, hands the answer to read and
// tells the Observer how it went.
// Waiting for the slot ends with ctx, and after Timeout too: a Jaeger that
// cannot keep up then fails the search, which backs its service off,
// instead of letting a queue grow with every tick. The error does not name
// u: the caller does, without credentials.
func (s *Source) get(ctx context.Context, u *url.URL, sent *atomic.Int64, read func(*http.Response) error) error {
	wait := time.NewTimer(s.timeout)
	defer wait.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for one of %d requests in flight to end: %w", cap(s.slots), context.Cause(ctx))
	case <-wait.C:
		return fmt.Errorf("%d requests in flight for %v, none ended: %w", cap(s.slots), s.timeout, context.DeadlineExceeded)
	}
	defer func() { <-s.slots }()
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx) // a slot and the end of ctx came together
	}
	sent.Add(1)
	start := time.Now()
	err := s.send(ctx, u, read)
	if s.obs != nil {
		s.obs.ObserveQuery(time.Since(start), err)
	}
	return err
}

// send sends GET u within Timeout and hands the answer to read.
func (s *Source) send(ctx context.Context, u *url.URL, read func(*http.Response) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the caller names the URL, without credentials
		}
		return err
	}
	defer resp.Body.Close()
	return read(resp)
}

// readSnippet reads the start of an error body for a message.
func readSnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return strings.TrimSpace(string(b))
}

// isNoTraces reports whether a 404 body is the API v3 gateway's own "not
// found" error, which is how Jaeger says a search found nothing, rather than
// a 404 for a path that does not exist.
func isNoTraces(body string) bool {
	var env envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error == nil {
		return false
	}
	return env.Error.HTTPCode == http.StatusNotFound
}
