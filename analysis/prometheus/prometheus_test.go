package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/analysis"
)

// fakeProm is a fake Prometheus HTTP API: answer gives the body and status
// of /api/v1/query per query text and evaluation time; it counts and
// records the queries it receives.
type fakeProm struct {
	*httptest.Server
	queries atomic.Int64
	mu      sync.Mutex
	got     []promQuery // the queries received, in order
}

// promQuery is one query received: its text and evaluation time.
type promQuery struct {
	text string
	at   time.Time
}

// received returns the texts of the queries received after the first
// skip ones.
func (f *fakeProm) received(skip int) []string {
	var out []string
	for _, q := range f.receivedAt(skip) {
		out = append(out, q.text)
	}
	return out
}

// receivedAt returns the queries received after the first skip ones, with
// their evaluation times; none when there were no more than skip.
func (f *fakeProm) receivedAt(skip int) []promQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got[min(skip, len(f.got)):])
}

func newFakeProm(t *testing.T, answer func(ctx context.Context, query string) (status int, body string)) *fakeProm {
	return newFakePromAt(t, func(ctx context.Context, query string, _ time.Time) (int, string) { return answer(ctx, query) })
}

// newFakePromAt is newFakeProm with answers that depend on the evaluation
// time.
func newFakePromAt(t *testing.T, answer func(ctx context.Context, query string, at time.Time) (status int, body string)) *fakeProm {
	t.Helper()
	f := &fakeProm{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		f.queries.Add(1)
		at, err := promTime(r.FormValue("time"))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%q}`, err)
			return
		}
		f.mu.Lock()
		f.got = append(f.got, promQuery{r.FormValue("query"), at})
		f.mu.Unlock()
		status, body := answer(r.Context(), r.FormValue("query"), at)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

// promTime parses the time parameter of a query, in Unix seconds with a
// fraction, as client_golang sends it; a query without one is evaluated
// now.
func promTime(v string) (time.Time, error) {
	if v == "" {
		return time.Now(), nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", v, err)
	}
	whole := math.Floor(secs)
	return time.Unix(int64(whole), int64(math.Round((secs-whole)*1e9))), nil
}

// vectorBody is a successful answer holding a vector of samples.
func vectorBody(samples ...sample) string {
	vec := make(model.Vector, 0, len(samples))
	for _, s := range samples {
		vec = append(vec, &model.Sample{Metric: s.labels.metric(), Value: model.SampleValue(s.value), Timestamp: 1_700_000_000_000})
	}
	return dataBody("vector", vec)
}

// dataBody is a successful answer of the given result type.
func dataBody(resultType string, result any) string {
	data, err := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": resultType, "result": result}})
	if err != nil {
		panic(err)
	}
	return string(data)
}

func newSource(t *testing.T, addr string, timeout time.Duration) *Source {
	t.Helper()
	s, err := New(Options{Address: addr, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestNewRejectsBadAddress(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1:9090", "ftp://127.0.0.1:9090", "http://", "http://[::1", "prometheus"} {
		_, err := New(Options{Address: addr})
		if err == nil || !strings.Contains(err.Error(), "prometheus address") || !strings.Contains(err.Error(), addr) {
			t.Errorf("New(%q) = %v, want an error naming the address", addr, err)
		}
	}
	if _, err := New(Options{Address: "http://127.0.0.1:9090", Timeout: -time.Second}); err == nil {
		t.Error("New with a negative timeout succeeded")
	}
}

func TestUnavailable(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	matrix := dataBody("matrix", []map[string]any{{"metric": map[string]string{}, "values": [][]any{{1, "1"}}}})
	tests := []struct {
		name    string
		status  int
		body    string
		delay   time.Duration
		addr    string // instead of the fake
		inError string
	}{
		{name: "malformed JSON", status: 200, body: `{"status":"success","data":{"resultType":"vector","result":[{`, inError: "data source unavailable"},
		{name: "HTTP 500", status: 500, body: "internal error", inError: "500"},
		{name: "HTTP 503", status: 503, body: `{"status":"error","errorType":"unavailable","error":"shutting down"}`, inError: "shutting down"},
		{name: "timeout", status: 200, body: vectorBody(), delay: time.Second, inError: "deadline exceeded"},
		{name: "matrix instead of vector", status: 200, body: matrix, inError: "answer is a matrix, want a vector"},
		{name: "connection refused", addr: closed.URL, inError: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProm(t, func(ctx context.Context, _ string) (int, string) {
				select { // the client gives up first; the request's context ends then
				case <-time.After(tt.delay):
				case <-ctx.Done():
				}
				return tt.status, tt.body
			})
			addr := f.URL
			if tt.addr != "" {
				addr = tt.addr
			}
			s := newSource(t, addr, 100*time.Millisecond)
			ctx := t.Context()
			if tt.delay > 0 {
				// A shared query may run for MaxStale; the caller's own
				// deadline (a tick's budget) is what it waits at most.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
			}
			_, err := s.Inbound(ctx, subsetTarget, time.Now())
			assertUnavailable(t, "Inbound", err, addr, tt.inError)
			_, err = s.Hops(ctx, subsetTarget, time.Now())
			assertUnavailable(t, "Hops", err, addr, tt.inError)
			if tt.name != "matrix instead of vector" { // a matrix is checked by TestScalar
				_, err = s.Scalar(ctx, "sum(up)", time.Now())
				assertUnavailable(t, "Scalar", err, addr, tt.inError)
			}
		})
	}
}

func assertUnavailable(t *testing.T, call string, err error, addr, inError string) {
	t.Helper()
	if !errors.Is(err, analysis.ErrUnavailable) || errors.Is(err, analysis.ErrNoData) {
		t.Fatalf("%s: err = %v, want ErrUnavailable", call, err)
	}
	if !strings.Contains(err.Error(), "query Prometheus at "+addr) || !strings.Contains(err.Error(), inError) {
		t.Errorf("%s: err = %q, want the address %s and %q", call, err, addr, inError)
	}
}

func TestNoData(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name    string
		counts  []sample
		missing string
	}{
		{"empty vectors", nil, "no inbound series for checkout v2"},
		{"NaN and Inf values are absent", []sample{in(nan, "v2", "200"), in(math.Inf(1), "v2", "500"), in(5, "v1", "200")}, "no inbound series for checkout v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProm(t, func(_ context.Context, q string) (int, string) {
				if q == MeshQuery(InboundRequestsQuery, nil) { // a new namespace is served mesh-wide first
					return 200, vectorBody(tt.counts...)
				}
				return 200, vectorBody()
			})
			s := newSource(t, f.URL, time.Second)
			_, err := s.Inbound(t.Context(), subsetTarget, time.Now())
			if !errors.Is(err, analysis.ErrNoData) || errors.Is(err, analysis.ErrUnavailable) || !strings.Contains(err.Error(), tt.missing) {
				t.Fatalf("err = %v, want ErrNoData containing %q", err, tt.missing)
			}
			hops, err := s.Hops(t.Context(), subsetTarget, time.Now())
			if err != nil || len(hops) != 0 {
				t.Errorf("Hops = %v, %v; want no hops and no error", hops, err)
			}
		})
	}
}

func TestScalar(t *testing.T) {
	one := func(v float64) sample { return smp(v, "job", "x") }
	tests := []struct {
		name    string
		body    string
		want    float64
		is      error  // sentinel the error wraps, if any
		inError string // for errors
	}{
		{name: "scalar", body: dataBody("scalar", []any{1700000000, "0.25"}), want: 0.25},
		{name: "one-element vector", body: vectorBody(one(42)), want: 42},
		{name: "empty vector", body: vectorBody(), is: analysis.ErrNoData, inError: "empty result"},
		{name: "NaN", body: vectorBody(one(math.NaN())), is: analysis.ErrNoData, inError: "NaN"},
		{name: "NaN scalar", body: dataBody("scalar", []any{1700000000, "NaN"}), is: analysis.ErrNoData, inError: "NaN"},
		{name: "several series", body: vectorBody(one(1), smp(2, "job", "y"), smp(3, "job", "z")), inError: "returned 3 series, want one"},
		{name: "matrix", body: dataBody("matrix", []any{}), is: analysis.ErrUnavailable, inError: "answer is a matrix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			f := newFakeProm(t, func(_ context.Context, q string) (int, string) { got = q; return 200, tt.body })
			s := newSource(t, f.URL, time.Second)
			v, err := s.Scalar(t.Context(), "my_query", time.Now())
			if got != "my_query" {
				t.Errorf("server got query %q, want my_query", got)
			}
			if tt.inError == "" {
				if err != nil || v != tt.want {
					t.Errorf("Scalar = %v, %v; want %v", v, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.inError) {
				t.Fatalf("err = %v, want one containing %q", err, tt.inError)
			}
			for _, sentinel := range []error{analysis.ErrNoData, analysis.ErrUnavailable} {
				if errors.Is(err, sentinel) != (sentinel == tt.is) {
					t.Errorf("err = %v: errors.Is(%v) = %v", err, sentinel, !(sentinel == tt.is))
				}
			}
		})
	}
}
