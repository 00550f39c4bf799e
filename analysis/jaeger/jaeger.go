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
package jaeger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// Defaults for Options.
const (
	DefaultMaxTraces = 200
	DefaultTimeout   = 2 * time.Second
)

// maxBody bounds how much of one answer is read. 200 traces of a few dozen
// spans are well under a megabyte.
const maxBody = 64 << 20

// Options configure a Source.
type Options struct {
	// QueryURL is the base URL of Jaeger's query service, e.g.
	// http://127.0.0.1:16686. Required.
	QueryURL string
	// MaxTraces bounds the traces fetched per Edges call, which bounds the
	// work per tick (default 200). Jaeger returns the most recent ones. In
	// host mode, where up to three service names are searched, each search
	// gets an equal share of what the earlier ones left.
	MaxTraces int
	// Timeout bounds each HTTP request (default 2s).
	Timeout time.Duration
	// HTTPClient is used for the requests; nil means a new http.Client.
	HTTPClient *http.Client
}

// Source is an analysis.TraceSource reading Jaeger's query API. It is safe
// for concurrent use.
type Source struct {
	base      *url.URL
	maxTraces int
	timeout   time.Duration
	client    *http.Client
	services  serviceList
}

var _ analysis.TraceSource = (*Source)(nil)

// New checks o and returns a Source. A missing or unparsable QueryURL, or a
// negative MaxTraces or Timeout, is an error that names it.
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
	if o.MaxTraces < 0 {
		return nil, fmt.Errorf("jaeger: bad MaxTraces %d: must not be negative", o.MaxTraces)
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("jaeger: bad Timeout %v: must not be negative", o.Timeout)
	}
	s := &Source{base: u, maxTraces: o.MaxTraces, timeout: o.Timeout, client: o.HTTPClient}
	if s.maxTraces == 0 {
		s.maxTraces = DefaultMaxTraces
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	return s, nil
}

// Edges implements analysis.TraceSource. It fetches at most MaxTraces
// traces through the analysed service that started in [since, until], tells
// canary from stable traces (see matcher) and returns the statistics of each
// edge from or to t.Service. Only cross-service parent → child links count;
// a callee without spans of its own does not appear. CanaryTraceID names
// the trace of the slowest failed canary call on the edge, or of the slowest
// canary call when none failed.
//
// It wraps analysis.ErrNoData when no trace was found, when none went
// through either side, or when no call touched the service; and
// analysis.ErrUnavailable, with the URL and the cause, when Jaeger could not
// be asked or its answer did not parse. It never returns an empty map
// without an error.
func (s *Source) Edges(ctx context.Context, t analysis.Target, since, until time.Time) (map[analysis.Edge]analysis.EdgePair, error) {
	m, err := newMatcher(t)
	if err != nil {
		return nil, err
	}
	if until.Before(since) {
		return nil, fmt.Errorf("jaeger: %s/%s: time range ends (%s) before it starts (%s)",
			t.Namespace, t.Service, until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	names := s.searchNames(ctx, m)
	traces, err := s.fetch(ctx, names, since, until)
	if err != nil {
		return nil, err
	}
	window := fmt.Sprintf("%s between %s and %s", listNames(names),
		since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	if len(traces) == 0 {
		return nil, fmt.Errorf("jaeger: no traces through %s: %w", window, analysis.ErrNoData)
	}
	edges, n := computeEdges(traces, m)
	switch {
	case n.canary+n.stable == 0:
		return nil, fmt.Errorf("jaeger: none of %d traces through %s went through canary %q or stable %q: %w",
			n.traces, window, m.canary, m.stable, analysis.ErrNoData)
	case len(edges) == 0:
		return nil, fmt.Errorf("jaeger: no calls from or to %s in %d traces (%d canary, %d stable) through %s: %w",
			m.service, n.traces, n.canary, n.stable, window, analysis.ErrNoData)
	}
	return edges, nil
}

// fetch searches the traces of each service name in turn and returns them
// grouped by trace ID. A trace found under several names (a host-mode trace
// that went through checkout and checkout-canary) is kept once, as first
// found. The names share MaxTraces: each search asks for an equal share of
// what the earlier ones left, so that names without traces (one of the two
// host-mode conventions) leave their share to the others, and no more than
// MaxTraces distinct traces are fetched.
func (s *Source) fetch(ctx context.Context, names []string, since, until time.Time) (map[string][]span, error) {
	traces := map[string][]span{}
	for i, name := range names {
		left := s.maxTraces - len(traces)
		if left <= 0 {
			break
		}
		spans, err := s.find(ctx, name, since, until, max(1, left/(len(names)-i)))
		if err != nil {
			return nil, err
		}
		for id, trace := range groupByTrace(spans) {
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
	where := u.Redacted()
	unavailable := func(cause error) error {
		return fmt.Errorf("jaeger: GET %s: %w: %w", where, analysis.ErrUnavailable, cause)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, unavailable(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the URL is already named, without credentials
		}
		return nil, unavailable(err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxBody)
	switch resp.StatusCode {
	case http.StatusOK:
		spans, err := decodeTraces(body)
		if err != nil {
			return nil, unavailable(err)
		}
		return spans, nil
	case http.StatusNotFound:
		text := readSnippet(body)
		if isNoTraces(text) {
			return nil, nil
		}
		return nil, unavailable(fmt.Errorf("HTTP 404 (is this Jaeger with API v3?): %s", text))
	default:
		return nil, unavailable(fmt.Errorf("HTTP %d: %s", resp.StatusCode, readSnippet(body)))
	}
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
