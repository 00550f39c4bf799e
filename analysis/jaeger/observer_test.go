package jaeger

import (
	"context"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *recorder) ObserveQuery(_ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recorder) failed() (n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		if err != nil {
			n++
		}
	}
	return n
}

// TestObserverSeesEveryRequest: every request sent (searches and service
// lists) is observed once; Jaeger's "no traces found" is a success, an
// HTTP 500 is not.
func TestObserverSeesEveryRequest(t *testing.T) {
	noTraces := `{"error":{"httpCode":404,"message":"No traces found"}}` + "\n"
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		wantFailed bool
	}{
		{"no traces", 404, noTraces, false},
		{"HTTP 500", 500, `{"error":{"httpCode":500,"message":"boom"}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := (&fakeJaeger{answer: serve(tc.status, tc.body)}).start(t)
			rec := &recorder{}
			s := newSource(t, Options{QueryURL: srv.URL, Observer: rec})
			_, _ = s.Edges(context.Background(), checkoutV2, since, until)
			sent := s.Searches() + s.ServiceLists()
			if sent == 0 || int64(len(rec.errs)) != sent {
				t.Fatalf("%d requests observed, %d sent; want as many, at least one", len(rec.errs), sent)
			}
			// The fake lists no services (404 on /api/v3/services): a
			// failed list is observed as such in both cases.
			searchesFailed := rec.failed() - int(s.ServiceLists())
			if got := searchesFailed > 0; got != tc.wantFailed {
				t.Errorf("observed errors %v; a failed search: %v, want %v", rec.errs, got, tc.wantFailed)
			}
		})
	}
}
