package rollout

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/serin-dev/serin/analysis"
)

// A canary that begins to fail between two of its ticks is acted on
// first. Once per scrape interval, one pass over the data the analyzer
// already holds (the shared answers every tick reads) names each rollout
// whose newest counters would take its error tests more than half-way to
// rejection (analysis.Tracker.Suspect). Each is queued at PriorityUrgent
// and ticked at once, ahead of the healthy rollouts in the queue and
// without waiting for its interval: with a thousand rollouts due, its
// rollback would otherwise wait its turn behind their ticks. An early
// tick is one more look at anytime-valid tests, which leaves their error
// bounds as they are; the pass itself decides nothing.

// Screener is an Analyzer that names, between ticks, the rollouts whose
// canary has begun to fail in the data it holds (analysis.Runner).
type Screener interface {
	Suspects() []analysis.RolloutKey
}

// DefaultScreenEvery is how often the screen runs when Options.ScreenEvery
// is zero: the scrape interval of the local stack and of most meshes
// that want fast rollbacks.
const DefaultScreenEvery = time.Second

// hurried are the rollouts the screen queued, to be ticked on their next
// reconcile even before their interval.
type hurried struct {
	mu   sync.Mutex
	keys map[types.NamespacedName]bool
}

func newHurried() *hurried { return &hurried{keys: map[types.NamespacedName]bool{}} }

// add marks key to be ticked at once.
func (h *hurried) add(key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keys[key] = true
}

// take reports whether key was marked, and clears the mark.
func (h *hurried) take(key types.NamespacedName) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := h.keys[key]
	delete(h.keys, key)
	return ok
}

// screenRunnable runs the screen while the manager runs, on the leader
// only (a manager.RunnableFunc needs leader election).
func (e *Engine) screenRunnable(s Screener) manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		every := e.o.ScreenEvery
		if every <= 0 {
			every = DefaultScreenEvery
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			e.screen(s)
		}
	})
}

// screen runs one pass: each suspect is marked and queued urgently.
func (e *Engine) screen(s Screener) {
	for _, k := range s.Suspects() {
		key := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
		e.hurried.add(key)
		e.metrics.suspects.Inc()
		select {
		case e.analyses.done <- event.TypedGenericEvent[analysed]{Object: analysed{key: key, urgent: true}}:
		default: // the buffer is full: the rollout's own tick comes anyway
		}
	}
}
