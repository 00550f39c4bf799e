package notify

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// QueueOptions tune the delivery queue that each channel has. Zero fields
// take the defaults.
type QueueOptions struct {
	// Size is how many events may wait for one channel; default 256. When
	// it is full the least important event goes (see priority).
	Size int
	// Retries is how many times a failure worth retrying is tried again
	// after the first attempt; default 3.
	Retries int
	// Backoff is the wait before the first retry, doubled before each next
	// one; default 1s.
	Backoff time.Duration
	// MaxWait caps any single wait, Retry-After included; default 60s.
	MaxWait time.Duration
	// Remember is how many delivered event ids a channel keeps, so that an
	// event sent again is not delivered twice; default 1024.
	Remember int
}

func (o QueueOptions) withDefaults() QueueOptions {
	if o.Size <= 0 {
		o.Size = 256
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
	if o.Remember <= 0 {
		o.Remember = 1024
	}
	return o
}

// ChannelStats counts what one channel's queue did.
type ChannelStats struct {
	Channel string
	// Queued is how many events wait now, the one being sent included.
	Queued int
	// Delivered and Failed count events; Failed ones were given up after a
	// failure not worth retrying or after the last retry.
	Delivered, Failed uint64
	// Dropped counts events pushed out of a full queue (or refused by it,
	// when less important than all it held).
	Dropped uint64
	// Duplicates counts events not queued because their id was already
	// queued or delivered.
	Duplicates uint64
	// Retried counts attempts that failed and were tried again.
	Retried uint64
}

// priority orders events for dropping from a full queue: the outcome of a
// rollout and what a person must act on go last.
func priority(k rollout.EventKind) int {
	switch k {
	case rollout.EventRolledBack, rollout.EventAborted, rollout.EventFailed:
		return 2
	case rollout.EventPaused, rollout.EventSucceeded, rollout.EventWarning:
		return 1
	}
	return 0
}

// item is one event waiting for one channel.
type item struct {
	m    message
	prio int
}

// channelQueue delivers one channel's events, in order, on its own worker,
// so that a channel that is slow or waiting to retry delays only itself.
// The worker runs while there is something to send and exits when the
// queue is empty; push starts it again. push never blocks.
type channelQueue struct {
	ch   Channel
	o    QueueOptions
	log  *slog.Logger
	send func(context.Context, Channel, message) (retry bool, after time.Duration, err error)

	mu      sync.Mutex
	items   []item
	running bool
	closed  bool
	// inflight is the id being sent; queued and delivered hold the ids
	// that a push of the same event must not send again (delivered as a
	// ring of the last o.Remember).
	inflight  string
	queued    map[string]bool
	delivered map[string]bool
	ring      []string
	stats     ChannelStats
}

func newChannelQueue(ch Channel, o QueueOptions, log *slog.Logger,
	send func(context.Context, Channel, message) (bool, time.Duration, error)) *channelQueue {
	return &channelQueue{ch: ch, o: o, log: log.With("channel", ch.Name), send: send,
		queued: map[string]bool{}, delivered: map[string]bool{}, stats: ChannelStats{Channel: ch.Name}}
}

// push queues m, unless its id is already queued, being sent or
// delivered. A full queue drops its oldest least important event, or m
// when m is less important than all of them. It starts the worker under
// ctx when it is idle.
func (q *channelQueue) push(ctx context.Context, wg *sync.WaitGroup, m message) {
	it := item{m: m, prio: priority(m.Event.Kind)}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.stats.Dropped++
		return
	}
	if q.inflight == m.ID || q.queued[m.ID] || q.delivered[m.ID] {
		q.stats.Duplicates++
		q.log.Debug("notification already queued or delivered", "rollout", rolloutOf(m), "kind", m.Event.Kind, "id", m.ID)
		return
	}
	if len(q.items) >= q.o.Size && !q.makeRoom(it) {
		return
	}
	q.items = append(q.items, it)
	q.queued[m.ID] = true
	if !q.running {
		q.running = true
		wg.Go(func() { q.run(ctx) })
	}
}

// makeRoom drops the oldest of the least important queued events to make
// room for it, or reports false when it is itself the least important.
// The caller holds q.mu.
func (q *channelQueue) makeRoom(it item) bool {
	low := 0
	for i, x := range q.items {
		if x.prio < q.items[low].prio {
			low = i
		}
	}
	drop, kept := it, false
	if it.prio >= q.items[low].prio {
		drop, kept = q.items[low], true
		q.items = slices.Delete(q.items, low, low+1)
		q.forget(drop.m.ID)
	}
	q.stats.Dropped++
	q.log.Warn("notification queue full; event dropped", "rollout", rolloutOf(drop.m), "kind", drop.m.Event.Kind,
		"size", q.o.Size, "dropped", q.stats.Dropped)
	return kept
}

// forget marks id as no longer queued. The caller holds q.mu.
func (q *channelQueue) forget(id string) { delete(q.queued, id) }

// run sends the queued events one at a time until the queue is empty.
func (q *channelQueue) run(ctx context.Context) {
	for {
		it, ok := q.next()
		if !ok {
			return
		}
		q.done(it.m.ID, q.deliver(ctx, it.m))
	}
}

// next takes the oldest event, or marks the worker stopped when there is
// none.
func (q *channelQueue) next() (item, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 || q.closed {
		q.running = false
		return item{}, false
	}
	it := q.items[0]
	q.items = slices.Delete(q.items, 0, 1)
	q.forget(it.m.ID)
	q.inflight = it.m.ID
	return it, true
}

// done records the outcome of the event in flight. A delivered id is
// remembered; a failed one is not, so that sending it again tries again.
func (q *channelQueue) done(id string, delivered bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = ""
	if !delivered {
		q.stats.Failed++
		return
	}
	q.stats.Delivered++
	if !q.delivered[id] {
		q.delivered[id] = true
		q.ring = append(q.ring, id)
		if len(q.ring) > q.o.Remember {
			delete(q.delivered, q.ring[0])
			q.ring = slices.Delete(q.ring, 0, 1)
		}
	}
}

// deliver tries m until it is delivered, a failure is not worth retrying,
// the retries run out or ctx ends. It waits the receiver's Retry-After
// when it gave one, else a doubling backoff, each wait capped at MaxWait.
func (q *channelQueue) deliver(ctx context.Context, m message) bool {
	backoff := q.o.Backoff
	for attempt := 1; ; attempt++ {
		retry, after, err := q.send(ctx, q.ch, m)
		if err == nil {
			return true
		}
		if !retry || attempt > q.o.Retries || ctx.Err() != nil {
			q.log.Warn("notification not delivered", "rollout", rolloutOf(m), "kind", m.Event.Kind, "attempts", attempt, "err", err)
			return false
		}
		wait := backoff
		if after > 0 {
			wait = after
		}
		wait = min(wait, q.o.MaxWait)
		backoff *= 2
		q.retried()
		q.log.Info("notification failed; will retry", "rollout", rolloutOf(m), "kind", m.Event.Kind,
			"attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			q.log.Warn("notification not delivered: shutting down", "rollout", rolloutOf(m), "kind", m.Event.Kind, "attempts", attempt, "err", err)
			return false
		case <-t.C:
		}
	}
}

func (q *channelQueue) retried() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stats.Retried++
}

// close drops what is queued; the worker stops after the event in flight.
func (q *channelQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.stats.Dropped += uint64(len(q.items))
	q.items = nil
	clear(q.queued)
}

func (q *channelQueue) snapshot() ChannelStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.Queued = len(q.items)
	if q.inflight != "" {
		s.Queued++
	}
	return s
}

func rolloutOf(m message) string { return m.Event.Namespace + "/" + m.Event.Name }
