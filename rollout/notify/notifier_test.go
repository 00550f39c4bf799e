package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		status     int
		retryAfter string
		retry      bool
		after      time.Duration
	}{
		{200, "", false, 0}, {204, "", false, 0},
		{400, "", false, 0}, {401, "", false, 0}, {404, "5", false, 0}, {302, "", false, 0},
		{429, "", true, 0}, {429, "7", true, 7 * time.Second}, {503, "120", true, 2 * time.Minute},
		{500, "", true, 0}, {502, "soon", true, 0}, {503, "-3", true, 0},
		{429, "Thu, 01 Jan 2026 12:00:30 GMT", true, 30 * time.Second},
		{429, "Thu, 01 Jan 2026 11:00:00 GMT", true, 0},
	}
	for _, tc := range cases {
		retry, after := classify(tc.status, tc.retryAfter, now)
		if retry != tc.retry || after != tc.after {
			t.Errorf("classify(%d, %q) = %v, %v; want %v, %v", tc.status, tc.retryAfter, retry, after, tc.retry, tc.after)
		}
	}
}

func TestNotifySlackEveryEvent(t *testing.T) {
	rc := newReceiver(t, ok)
	n := newNotifier(t, 2*time.Second, rc.channel("slack", TypeSlack))
	kinds := append(append([]rollout.EventKind(nil), DefaultEvents...), rollout.EventResumed)
	for _, k := range kinds {
		ev := rolledBack()
		ev.Kind = k
		if retry, err := n.Notify(context.Background(), ev); err != nil {
			t.Fatalf("%s: retry %v err %v", k, retry, err)
		}
	}
	hits := rc.waitFor(len(kinds), 5*time.Second) // in order: one worker per channel
	time.Sleep(100 * time.Millisecond)
	if got := len(rc.got()); got != len(kinds) {
		t.Fatalf("got %d posts, want %d", got, len(kinds))
	}
	for i, h := range hits {
		var p slackMessage
		if err := json.Unmarshal(h.body, &p); err != nil || p.Text == "" || len(p.Blocks) < 2 || p.Blocks[0].Type != "header" {
			t.Errorf("%s: not a Block Kit payload with text: %s (%v)", kinds[i], h.body, err)
		}
		if ct := h.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func TestNotifyFilters(t *testing.T) {
	a, b := newReceiver(t, ok), newReceiver(t, ok)
	chA, chB := a.channel("a", TypeSlack), b.channel("b", TypeMattermost)
	chB.Events = map[rollout.EventKind]bool{rollout.EventRolledBack: true}
	n := newNotifier(t, time.Second, chA, chB)
	ctx := context.Background()
	mustNotify := func(ev rollout.Event) {
		if _, err := n.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	mustNotify(rollout.Event{Kind: rollout.EventStarted})                             // a only: b does not want Started
	mustNotify(rollout.Event{Kind: rollout.EventRolledBack})                          // both
	mustNotify(rollout.Event{Kind: rollout.EventRolledBack, Channels: []string{"b"}}) // the Rollout names b
	mustNotify(rollout.Event{Kind: rollout.EventStarted, Channels: []string{"b"}})    // b named but does not want it
	if len(a.got()) != 2 || len(b.got()) != 2 {
		t.Errorf("a got %d, b got %d; want 2, 2", len(a.got()), len(b.got()))
	}
	for _, send := range []func(context.Context, rollout.Event) (bool, error){n.Send, n.Notify} {
		retry, err := send(ctx, rollout.Event{Kind: rollout.EventStarted, Channels: []string{"nope"}})
		if retry || err == nil || !strings.Contains(err.Error(), "channel nope: no such notification channel") {
			t.Errorf("unknown channel: retry %v err %v", retry, err)
		}
	}
}

func TestNotify400NotRetried(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("invalid_blocks at " + r.URL.Path)) // echoes the secret path
	})
	n := newNotifier(t, time.Second, rc.channel("slack", TypeSlack))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})
	q.Push(rolledBack())
	rc.waitFor(1, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // six backoffs' worth: a retry would have come
	if got := len(rc.got()); got != 1 {
		t.Errorf("a 400 was retried: %d posts", got)
	}
	retry, err := n.Send(context.Background(), rolledBack())
	if retry || err == nil {
		t.Fatalf("retry %v err %v", retry, err)
	}
	var se *SendError
	if !errors.As(err, &se) || se.Status != 400 || !strings.Contains(err.Error(), "HTTP 400: invalid_blocks at [redacted]") {
		t.Errorf("err = %v", err)
	}
	if strings.Contains(err.Error(), secretToken) {
		t.Errorf("error quotes the URL: %v", err)
	}
}

// A hanging channel times out on its own; the others are served at once.
func TestNotifyHangingChannel(t *testing.T) {
	release := make(chan struct{})
	hang := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	fine := newReceiver(t, ok)
	const timeout = 1500 * time.Millisecond
	n := newNotifier(t, timeout, hang.channel("hang", TypeTeams), fine.channel("fine", TypeTeams))
	start := time.Now()
	retry, err := n.Send(context.Background(), rolledBack())
	took := time.Since(start)
	if !retry || err == nil || !strings.Contains(err.Error(), "channel hang: no answer within 1.5s") {
		t.Fatalf("retry %v err %v", retry, err)
	}
	if strings.Contains(err.Error(), secretToken) || strings.Contains(err.Error(), hang.srv.URL) {
		t.Errorf("error quotes the URL: %v", err)
	}
	var de *DeliveryError
	if !errors.As(err, &de) || len(de.Pending()) != 1 || de.Pending()[0] != "hang" {
		t.Errorf("pending = %v", de)
	}
	hits := fine.got()
	if len(hits) != 1 {
		t.Fatalf("fine got %d posts", len(hits))
	}
	if d := hits[0].at.Sub(start); d >= timeout {
		t.Errorf("the healthy channel waited for the hanging one (%v)", d)
	}
	if took < timeout || took > 10*timeout {
		t.Errorf("Notify took %v: the per-send timeout is %v", took, timeout)
	}
}

func TestWebhookSignature(t *testing.T) {
	rc := newReceiver(t, ok)
	ch := rc.channel("audit", TypeWebhook)
	n := newNotifier(t, time.Second, ch)
	if _, err := n.Notify(context.Background(), rolledBack()); err != nil {
		t.Fatal(err)
	}
	h := rc.waitFor(1, time.Second)[0]
	sig := h.header.Get("X-Serin-Signature")
	if !strings.HasPrefix(sig, "sha256=") || !Verify([]byte("hmac-key"), h.body, sig) {
		t.Fatalf("signature %q does not verify", sig)
	}
	if Verify([]byte("other-key"), h.body, sig) || Verify([]byte("hmac-key"), append(h.body, ' '), sig) {
		t.Error("signature verifies with the wrong key or body")
	}
	var p WebhookPayload
	if err := json.Unmarshal(h.body, &p); err != nil {
		t.Fatal(err)
	}
	if ts := h.header.Get("X-Serin-Timestamp"); ts != strconv.FormatInt(p.SentAt, 10) {
		t.Errorf("X-Serin-Timestamp %q, sentAt %d", ts, p.SentAt)
	}
	if h.header.Get("X-Serin-Event") != "RolledBack" || h.header.Get("X-Serin-Delivery") != p.ID {
		t.Errorf("headers %v", h.header)
	}
}

// syncBuffer is a log sink safe for the queues' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every failure path of a run logs its error; none may show the URL.
func TestSecretURLNeverLogged(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bad := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("boom " + r.URL.String()))
	})
	gone := newReceiver(t, ok)
	goneCh := gone.channel("gone", TypeDiscord)
	gone.srv.Close() // connection refused: a *url.Error, which quotes the URL
	n := newNotifierOpts(t, Options{Timeout: time.Second, Log: log, Queue: QueueOptions{Retries: 2, Backoff: 10 * time.Millisecond}},
		bad.channel("bad", TypeSlack), goneCh)
	q := startQueueLog(t, n, rollout.NotifyQueueOptions{}, log)
	q.Push(rolledBack())
	bad.waitFor(3, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "notification not delivered") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "notification not delivered") || !strings.Contains(out, "channel gone: dial tcp") {
		t.Fatalf("expected failure logs, got:\n%s", out)
	}
	if !strings.Contains(out, "channel bad: HTTP 500") {
		t.Errorf("log lacks the 500:\n%s", out)
	}
	if strings.Contains(out, secretToken) || strings.Contains(out, "/hooks/") {
		t.Errorf("a secret URL is in the logs:\n%s", out)
	}
	if _, err := n.Send(context.Background(), rolledBack()); err == nil || strings.Contains(err.Error(), secretToken) {
		t.Errorf("err = %v", err)
	}
}
