package prometheus

import (
	"context"
	"errors"
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

// TestObserverSeesEveryQuery: each query sent is observed once, with its
// error; an empty answer is a success, a server error and a timeout are
// not.
func TestObserverSeesEveryQuery(t *testing.T) {
	f := newFakeProm(t, func(ctx context.Context, q string) (int, string) {
		switch q {
		case "broken":
			return 503, `{"status":"error","errorType":"unavailable","error":"shutting down"}`
		case "slow":
			<-ctx.Done()
			return 200, vectorBody()
		}
		return 200, vectorBody()
	})
	rec := &recorder{}
	s, err := New(Options{Address: f.URL, Timeout: 100 * time.Millisecond, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"empty", "broken", "slow"} {
		_, _ = s.Scalar(t.Context(), q, time.Now())
	}
	if len(rec.errs) != 3 || int64(len(rec.errs)) != s.Queries() {
		t.Fatalf("%d queries observed, %d sent; want 3 of each", len(rec.errs), s.Queries())
	}
	if rec.errs[0] != nil || rec.errs[1] == nil || rec.errs[2] == nil {
		t.Errorf("observed errors %v; want nil for the empty answer, an error for the 503 and the timeout", rec.errs)
	}
	if !errors.Is(rec.errs[2], context.DeadlineExceeded) {
		t.Errorf("the slow query's error %v is not a deadline", rec.errs[2])
	}
}
