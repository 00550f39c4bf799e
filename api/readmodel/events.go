package readmodel

import (
	"sync"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// EventType says what happened to a Rollout in the read model.
type EventType string

// The kinds of change a subscriber sees.
const (
	EventUpsert EventType = "upsert" // added or changed
	EventDelete EventType = "delete" // removed
)

// Event is one change in the read model. Rollout, Row and Point are
// shared between all subscribers and must not be modified; copy them
// first.
type Event struct {
	Type    EventType
	Rollout *v1alpha1.Rollout
	// Row is the rollout's list row: the new one after an upsert, the last
	// one before a delete.
	Row *Row
	// Point is the newest point of the rollout's series after an upsert
	// (nil when it has none): the tick this change recorded, or an
	// earlier one when the change was not a new tick.
	Point *Point
}

// hub fans events out to subscribers over bounded channels. It never
// blocks a writer: a subscriber whose channel is full is dropped.
type hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

func newHub() *hub { return &hub{subs: map[chan Event]struct{}{}} }

func (h *hub) subscribe(buffer int) (<-chan Event, func()) {
	if buffer < 1 {
		buffer = 1
	}
	ch := make(chan Event, buffer)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() { h.drop(ch) }
}

// drop unsubscribes ch and closes it, once.
func (h *hub) drop(ch chan Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default: // too slow: drop it rather than block the informer
			delete(h.subs, ch)
			close(ch)
		}
	}
}
