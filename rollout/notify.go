package rollout

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// The queue's retry contract with a Notifier. Both are optional interfaces
// of the error that Notify returns; errors.As finds them through wrapping.
//
//   - RetryAfter() time.Duration: the receiver said when to try again (an
//     HTTP Retry-After). The queue waits that long, capped at MaxWait,
//     instead of its own backoff. Zero means "no opinion".
//   - Pending() []string: the delivery was partial, and only the named
//     channels still need the event. The queue retries with ev.Channels set
//     to those names, so a channel that already has the event never gets it
//     twice because another one failed. An empty list retries the event as
//     a whole.
type (
	retryAfterer interface{ RetryAfter() time.Duration }
	pendinger    interface{ Pending() []string }
)

// NotifyQueueOptions tune a NotifyQueue. Zero fields take the defaults.
type NotifyQueueOptions struct {
	// Size is how many events wait before Push drops; default 1024.
	Size int
	// Timeout bounds one Notify call, all channels together; default 30s.
	// A Notifier should bound each send well below it.
	Timeout time.Duration
	// Retries is how many times a retryable failure is tried again after
	// the first attempt; default 3.
	Retries int
	// Backoff is the wait before the first retry, doubled before each
	// next one; default 1s.
	Backoff time.Duration
	// MaxWait caps any single wait, Retry-After included; default 60s.
	MaxWait time.Duration
}

func (o NotifyQueueOptions) withDefaults() NotifyQueueOptions {
	if o.Size <= 0 {
		o.Size = 1024
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 60 * time.Second
	}
	return o
}

// notifyQueue delivers events to the Notifier off the reconcile path, so
// that a slow or failing channel never delays a rollback. It is bounded:
// when it is full, new events are dropped and logged. One worker delivers
// the events one at a time, retries included, so the events of a rollout
// reach every channel in order; the price is that a channel in retry holds
// back the events behind it, for at most Retries waits of MaxWait each.
type notifyQueue struct {
	n   Notifier
	log *slog.Logger
	ch  chan Event
	o   NotifyQueueOptions
}

func newNotifyQueue(n Notifier, log *slog.Logger) *notifyQueue {
	return newQueue(n, log, NotifyQueueOptions{})
}

func newQueue(n Notifier, log *slog.Logger, o NotifyQueueOptions) *notifyQueue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o = o.withDefaults()
	return &notifyQueue{n: n, log: log, ch: make(chan Event, o.Size), o: o}
}

// push enqueues ev without blocking.
func (q *notifyQueue) push(ev Event) {
	select {
	case q.ch <- ev:
	default:
		q.log.Warn("notification queue full; event dropped", "rollout", ev.Namespace+"/"+ev.Name, "kind", ev.Kind)
	}
}

// Start delivers queued events until ctx ends. It makes the queue a
// controller-runtime Runnable.
func (q *notifyQueue) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-q.ch:
			q.deliver(ctx, ev)
		}
	}
}

// deliver tries ev until it is delivered, a failure is not worth retrying,
// or the retries run out. After a partial delivery only the pending
// channels are tried again.
func (q *notifyQueue) deliver(ctx context.Context, ev Event) {
	backoff := q.o.Backoff
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, q.o.Timeout)
		retry, err := q.n.Notify(sctx, ev)
		cancel()
		if err == nil {
			return
		}
		rollout := ev.Namespace + "/" + ev.Name
		if !retry || attempt > q.o.Retries || ctx.Err() != nil {
			q.log.Warn("notification not delivered", "rollout", rollout, "kind", ev.Kind, "attempts", attempt, "err", err)
			return
		}
		var p pendinger
		if errors.As(err, &p) && len(p.Pending()) > 0 {
			ev.Channels = p.Pending()
		}
		wait := q.wait(err, backoff)
		backoff *= 2
		q.log.Info("notification failed; will retry", "rollout", rollout, "kind", ev.Kind,
			"attempt", attempt, "wait", wait, "channels", ev.Channels, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// wait is how long to wait before the next attempt: the receiver's
// Retry-After when it gave one, else the backoff, capped at MaxWait.
func (q *notifyQueue) wait(err error, backoff time.Duration) time.Duration {
	w := backoff
	var ra retryAfterer
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		w = ra.RetryAfter()
	}
	return min(w, q.o.MaxWait)
}

// NotifyQueue is the engine's bounded, single-worker delivery queue, for
// code that sends events outside the engine and for notifier packages that
// test their retry contract against the real policy.
type NotifyQueue struct{ q *notifyQueue }

// NewNotifyQueue returns a queue in front of n; log may be nil.
func NewNotifyQueue(n Notifier, log *slog.Logger, o NotifyQueueOptions) *NotifyQueue {
	return &NotifyQueue{q: newQueue(n, log, o)}
}

// Push enqueues ev without blocking; it drops and logs ev when full.
func (q *NotifyQueue) Push(ev Event) { q.q.push(ev) }

// Start delivers queued events until ctx ends.
func (q *NotifyQueue) Start(ctx context.Context) error { return q.q.Start(ctx) }
