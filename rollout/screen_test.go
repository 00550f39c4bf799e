package rollout

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/analysis"
)

type suspects []analysis.RolloutKey

func (s suspects) Suspects() []analysis.RolloutKey { return s }

// One pass of the screen marks each suspect to be ticked at once, once,
// and queues it urgently; a rollout it did not name is left alone.
func TestScreenQueuesSuspectsUrgently(t *testing.T) {
	m, err := newEngineMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{analyses: newAnalyses(), hurried: newHurried(), metrics: m}
	e.screen(suspects{{Namespace: "shop", Name: "checkout"}})
	key := types.NamespacedName{Namespace: "shop", Name: "checkout"}
	select {
	case ev := <-e.analyses.done:
		if ev.Object.key != key || !ev.Object.urgent {
			t.Errorf("queued %+v, want %v urgently", ev.Object, key)
		}
	default:
		t.Fatal("the suspect was not queued")
	}
	if len(e.analyses.done) != 0 {
		t.Errorf("%d more queued, want only the suspect", len(e.analyses.done))
	}
	if !e.hurried.take(key) || e.hurried.take(key) {
		t.Errorf("the suspect's early tick: want it marked once")
	}
	if e.hurried.take(types.NamespacedName{Namespace: "shop", Name: "cart"}) {
		t.Errorf("a rollout the screen did not name is marked")
	}
	if got := testutil.ToFloat64(e.metrics.suspects); got != 1 {
		t.Errorf("suspects counted %v, want 1", got)
	}
	// An empty pass queues nothing.
	e.screen(suspects{})
	if len(e.analyses.done) != 0 {
		t.Errorf("an empty pass queued %d", len(e.analyses.done))
	}
}
