package notify

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// secretToken is the credential part of every test URL: it must never
// show up in a log line or an error.
const secretToken = "T0KEN-s3cr3t-XYZ"

// hit is one request a receiver got.
type hit struct {
	at     time.Time
	body   []byte
	header http.Header
}

// receiver is a real HTTP server that records what it gets and answers
// with respond(n), n counting from 1.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{t: t, respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{time.Now(), body, r.Header.Clone()})
		n := len(rc.hits)
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// ok answers 200 to everything.
func ok(int, http.ResponseWriter, *http.Request) {}

// statuses answers the given statuses in turn, then 200.
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= len(codes) {
			w.WriteHeader(codes[n-1])
		}
	}
}

// url is the receiver's secret webhook URL.
func (rc *receiver) url() string { return rc.srv.URL + "/hooks/" + secretToken }

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// waitFor waits until the receiver has n hits, or fails the test.
func (rc *receiver) waitFor(n int, within time.Duration) []hit {
	rc.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if h := rc.got(); len(h) >= n {
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc.t.Fatalf("receiver got %d requests, want %d within %v", len(rc.got()), n, within)
	return nil
}

// channel returns a channel of type t posting to rc.
func (rc *receiver) channel(name string, t Type) Channel {
	ch := Channel{Name: name, Type: t, URL: NewSecret(rc.url()), Events: map[rollout.EventKind]bool{}}
	for _, k := range append(slices.Clone(DefaultEvents), rollout.EventResumed) {
		ch.Events[k] = true
	}
	if t == TypeWebhook {
		ch.Key = NewSecret("hmac-key")
	}
	return ch
}

func newNotifier(t *testing.T, timeout time.Duration, chans ...Channel) *Notifier {
	return newNotifierOpts(t, Options{Timeout: timeout}, chans...)
}

// newNotifierOpts returns a Notifier closed when the test ends. Its
// queues back off 50ms unless o says otherwise, so that retries are quick,
// and it logs nowhere unless o.Log is set.
func newNotifierOpts(t *testing.T, o Options, chans ...Channel) *Notifier {
	t.Helper()
	if o.Queue.Backoff == 0 {
		o.Queue.Backoff = 50 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	n, err := New(&Config{ConsoleURL: "https://serin.example", JaegerURL: "https://jaeger.example", Channels: chans}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// startQueue runs the engine's real queue in front of n until the test
// ends. The Notifier's own queues do the retrying; the engine's only
// hands events over.
func startQueue(t *testing.T, n rollout.Notifier, o rollout.NotifyQueueOptions) *rollout.NotifyQueue {
	return startQueueLog(t, n, o, nil)
}

func startQueueLog(t *testing.T, n rollout.Notifier, o rollout.NotifyQueueOptions, log *slog.Logger) *rollout.NotifyQueue {
	t.Helper()
	q := rollout.NewNotifyQueue(n, log, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return q
}
