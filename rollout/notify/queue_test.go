package notify

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// These tests run the engine's real queue (rollout.NotifyQueue) in front
// of the Notifier, whose channel queues retry, and real HTTP receivers.

func TestRetry500Then200DeliveredOnce(t *testing.T) {
	rc := newReceiver(t, statuses(http.StatusInternalServerError))
	q := startQueue(t, newNotifier(t, time.Second, rc.channel("slack", TypeSlack)), rollout.NotifyQueueOptions{})
	q.Push(rolledBack())
	hits := rc.waitFor(2, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // room for a wrong third post
	if got := len(rc.got()); got != 2 {
		t.Fatalf("receiver got %d posts, want 500 then one 200", got)
	}
	if string(hits[0].body) != string(hits[1].body) {
		t.Error("the retry sent a different message")
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	// The backoff alone would retry after 20ms.
	n := newNotifierOpts(t, Options{Timeout: time.Second, Queue: QueueOptions{Backoff: 20 * time.Millisecond}}, rc.channel("discord", TypeDiscord))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})
	q.Push(rolledBack())
	hits := rc.waitFor(2, 5*time.Second)
	if gap := hits[1].at.Sub(hits[0].at); gap < 900*time.Millisecond {
		t.Errorf("second attempt %v after the 429, want about Retry-After: 1s", gap)
	}
}

func TestRetryAfterCapped(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	n := newNotifierOpts(t, Options{Timeout: time.Second, Queue: QueueOptions{MaxWait: 100 * time.Millisecond}}, rc.channel("mm", TypeMattermost))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})
	q.Push(rolledBack())
	rc.waitFor(2, 5*time.Second) // not an hour
}

// One channel fails once; the healthy one gets the event exactly once.
func TestPartialFailureRetriesOnlyThePendingChannel(t *testing.T) {
	flaky := newReceiver(t, statuses(http.StatusBadGateway))
	healthy := newReceiver(t, ok)
	n := newNotifier(t, time.Second, flaky.channel("flaky", TypeTeams), healthy.channel("healthy", TypeSlack))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})
	q.Push(rolledBack())
	flaky.waitFor(2, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := len(healthy.got()); got != 1 {
		t.Errorf("healthy channel got %d posts, want 1", got)
	}
	if got := len(flaky.got()); got != 2 {
		t.Errorf("flaky channel got %d posts, want 2", got)
	}
}

// Twenty events of one rollout, with the receiver failing every third
// request: each arrives once, in order.
func TestOrderPreservedUnderRetries(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	n := newNotifierOpts(t, Options{Timeout: time.Second, Queue: QueueOptions{Backoff: 5 * time.Millisecond}}, rc.channel("audit", TypeWebhook))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})
	for i := range 20 {
		q.Push(rollout.Event{Kind: rollout.EventStepAdvanced, Namespace: "shop", Name: "checkout", Step: int32(i), Time: t0.Add(time.Duration(i) * time.Second)})
	}
	var steps []int32
	deadline := time.Now().Add(10 * time.Second)
	for len(steps) < 20 && time.Now().Before(deadline) {
		steps = steps[:0]
		for n, h := range rc.got() {
			if (n+1)%3 == 0 {
				continue // answered 503: not delivered
			}
			var p WebhookPayload
			if err := json.Unmarshal(h.body, &p); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, p.Step)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(steps) != 20 {
		t.Fatalf("delivered %d events, want 20: %v", len(steps), steps)
	}
	for i, s := range steps {
		if s != int32(i) {
			t.Fatalf("delivered out of order or twice: %v", steps)
		}
	}
}
