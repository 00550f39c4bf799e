package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// A channel answering 503 with Retry-After: 60 must not hold back another
// channel's messages. The event goes through the engine's real queue, so
// this is the path a rollback takes in the controller.
func TestRetryingChannelDoesNotDelayAnother(t *testing.T) {
	bad := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	good := newReceiver(t, ok)
	n := newNotifierOpts(t, Options{Timeout: time.Second, Queue: QueueOptions{MaxWait: time.Minute}},
		bad.channel("bad", TypeSlack), good.channel("good", TypeDiscord))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})

	started := rolledBack()
	started.Kind, started.Time = rollout.EventStarted, t0.Add(-time.Minute)
	q.Push(started)
	bad.waitFor(1, 5*time.Second) // bad now waits out its Retry-After: 60
	q.Push(rolledBack())

	// The liveness bound is far below the 60 s the bad channel asked for:
	// the order of requests is what the test asserts.
	hits := good.waitFor(2, 10*time.Second)
	var p discordMessage
	if err := json.Unmarshal(hits[1].body, &p); err != nil || p.Content != "Rolled back: shop/checkout" {
		t.Fatalf("healthy channel's second message = %s (%v), want the rollback", hits[1].body, err)
	}
	before := 0
	for _, h := range bad.got() {
		if h.at.Before(hits[1].at) {
			before++
		}
	}
	if before != 1 {
		t.Errorf("the bad channel was asked %d times before the healthy one got the rollback; want 1 (still within its Retry-After)", before)
	}
}

// A rollback re-sent after a status conflict is the same event: same id
// in the payload and the delivery header, delivered once.
func TestResentRollbackDeliveredOnce(t *testing.T) {
	rc := newReceiver(t, ok)
	other := newReceiver(t, ok)
	n := newNotifier(t, time.Second, rc.channel("audit", TypeWebhook), other.channel("chat", TypeMattermost))
	q := startQueue(t, n, rollout.NotifyQueueOptions{})

	first := rolledBack()
	again := rolledBack() // confirmed again, later, after the status write conflicted
	again.Time, again.CompletedAt = first.Time.Add(2*time.Second), first.CompletedAt.Add(2*time.Second)
	q.Push(first)
	q.Push(again)
	next := rolledBack() // a later, different rollback of the same rollout
	next.DetectedAt, next.LastPassAt = t0.Add(time.Hour), t0.Add(time.Hour-8*time.Second)
	next.Time, next.CompletedAt = t0.Add(time.Hour+time.Second), t0.Add(time.Hour+time.Second)
	q.Push(next)

	hits := rc.waitFor(2, 5*time.Second)
	other.waitFor(2, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // room for a wrong third post
	if got := len(rc.got()); got != 2 {
		t.Fatalf("webhook got %d posts, want the re-sent rollback once and the later one", got)
	}
	if got := len(other.got()); got != 2 {
		t.Errorf("chat channel got %d posts, want 2", got)
	}
	var p0, p1 WebhookPayload
	if err := json.Unmarshal(hits[0].body, &p0); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(hits[1].body, &p1); err != nil {
		t.Fatal(err)
	}
	if p0.ID == p1.ID || !p1.DetectedAt.Equal(next.DetectedAt) {
		t.Errorf("second delivery is %s (detected %v), want the later rollback with a new id", p1.ID, p1.DetectedAt)
	}
	if h := hits[0].header.Get("X-Serin-Delivery"); h != p0.ID {
		t.Errorf("X-Serin-Delivery %q, payload id %q", h, p0.ID)
	}
}

// gate is a receiver that holds its first request until open is called.
func gate(t *testing.T) (*receiver, func()) {
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	return rc, open
}

func step(i int) rollout.Event {
	return rollout.Event{Kind: rollout.EventStepAdvanced, Namespace: "shop", Name: "checkout", Step: int32(i), Weight: int32(i), Time: t0.Add(time.Duration(i) * time.Second)}
}

func kindsOf(t *testing.T, hits []hit) []string {
	t.Helper()
	var out []string
	for _, h := range hits {
		var p WebhookPayload
		if err := json.Unmarshal(h.body, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s/%d", p.Kind, p.Step))
	}
	return out
}

// A full queue drops its oldest least important event, or the new one
// when that is the least important, and counts the drops; Notify never
// waits for the channel.
func TestFullQueueDropsLowestPriorityFirst(t *testing.T) {
	rc, open := gate(t)
	n := newNotifierOpts(t, Options{Timeout: 30 * time.Second, Queue: QueueOptions{Size: 3}}, rc.channel("audit", TypeWebhook))
	notify := func(ev rollout.Event) {
		t.Helper()
		if _, err := n.Notify(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	notify(step(0))
	rc.waitFor(1, 5*time.Second) // step 0 is in flight, held by the receiver
	for i := 1; i <= 5; i++ {
		notify(step(i)) // queue: 3 4 5; 1 and 2 dropped
	}
	rb := rolledBack()
	rb.Step = 6
	notify(rb)      // drops 3
	notify(step(7)) // drops 4: the oldest of the least important
	paused := step(8)
	paused.Kind = rollout.EventPaused
	notify(paused) // drops 5
	ab := step(9)
	ab.Kind = rollout.EventAborted
	notify(ab)       // drops 7
	notify(step(10)) // dropped itself: less important than all queued
	for i := 11; i < 1011; i++ {
		notify(step(i)) // never blocks, all dropped
	}
	st := n.Stats()[0]
	if st.Dropped != 1007 || st.Queued != 4 {
		t.Fatalf("stats %+v, want 1007 dropped, 4 queued (one in flight)", st)
	}
	open()
	hits := rc.waitFor(4, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	got := kindsOf(t, rc.got())
	want := []string{"StepAdvanced/0", "RolledBack/6", "Paused/8", "Aborted/9"}
	if !slices.Equal(got, want) || len(hits) != 4 {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if st := n.Stats()[0]; st.Delivered != 4 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
}

// An id already in flight, queued or delivered is not sent again; a
// failed one may be.
func TestQueueDeduplicates(t *testing.T) {
	rc, open := gate(t)
	n := newNotifierOpts(t, Options{Timeout: 30 * time.Second}, rc.channel("audit", TypeWebhook))
	ctx := context.Background()
	a, b := step(1), step(2)
	_, _ = n.Notify(ctx, a)
	rc.waitFor(1, 5*time.Second)
	_, _ = n.Notify(ctx, a) // in flight
	_, _ = n.Notify(ctx, b)
	_, _ = n.Notify(ctx, b) // queued
	open()
	rc.waitFor(2, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats()[0].Delivered < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = n.Notify(ctx, a) // delivered
	time.Sleep(200 * time.Millisecond)
	if got := kindsOf(t, rc.got()); !slices.Equal(got, []string{"StepAdvanced/1", "StepAdvanced/2"}) {
		t.Errorf("delivered %v", got)
	}
	if st := n.Stats()[0]; st.Duplicates != 3 || st.Delivered != 2 {
		t.Errorf("stats %+v, want 3 duplicates, 2 delivered", st)
	}

	bad := newReceiver(t, statuses(http.StatusBadRequest))
	n2 := newNotifier(t, time.Second, bad.channel("bad", TypeWebhook))
	_, _ = n2.Notify(ctx, a)
	bad.waitFor(1, 5*time.Second)
	for n2.Stats()[0].Failed < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = n2.Notify(ctx, a) // not delivered before: tried again
	bad.waitFor(2, 5*time.Second)
}
