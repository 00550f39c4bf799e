package rollout

import (
	"context"
	"log/slog"
	"time"
)

// notifyQueue delivers events to the Notifier off the reconcile path, so
// that a slow or failing channel never delays a rollback. It is bounded:
// when it is full, new events are dropped and logged. One worker keeps the
// events of a rollout in order.
type notifyQueue struct {
	n       Notifier
	log     *slog.Logger
	ch      chan Event
	timeout time.Duration
	retries int
	backoff time.Duration
}

const notifyQueueSize = 1024

func newNotifyQueue(n Notifier, log *slog.Logger) *notifyQueue {
	return &notifyQueue{n: n, log: log, ch: make(chan Event, notifyQueueSize),
		timeout: 10 * time.Second, retries: 3, backoff: time.Second}
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

func (q *notifyQueue) deliver(ctx context.Context, ev Event) {
	wait := q.backoff
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, q.timeout)
		retry, err := q.n.Notify(sctx, ev)
		cancel()
		if err == nil {
			return
		}
		if !retry || attempt > q.retries || ctx.Err() != nil {
			q.log.Warn("notification not delivered", "rollout", ev.Namespace+"/"+ev.Name, "kind", ev.Kind, "attempts", attempt, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}
