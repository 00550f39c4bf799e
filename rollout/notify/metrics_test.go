package notify

import (
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCollectorCountsOutcomes: a channel that fails once and then
// delivers counts a retry and a send; one that answers 400 counts a
// failure; every outcome of every channel is there from zero.
func TestCollectorCountsOutcomes(t *testing.T) {
	flaky := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	refusing := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	n := newNotifierOpts(t, Options{Timeout: time.Second, Queue: QueueOptions{Backoff: 10 * time.Millisecond}},
		flaky.channel("flaky", TypeSlack), refusing.channel("refusing", TypeDiscord))
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(n.Collector()); err != nil {
		t.Fatal(err)
	}
	if got := notifications(t, reg); len(got) != 8 || got["flaky retried"] != 0 {
		t.Fatalf("before any event: %v, want every outcome of both channels at 0", got)
	}
	if _, err := n.Notify(t.Context(), rolledBack()); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"flaky sent": 1, "flaky retried": 1, "flaky failed": 0, "flaky dropped": 0,
		"refusing sent": 0, "refusing retried": 0, "refusing failed": 1, "refusing dropped": 0,
	}
	var got map[string]float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = notifications(t, reg); maps.Equal(got, want) {
			return
		}
	}
	t.Errorf("serin_notifications_total = %v, want %v", got, want)
}

// notifications returns serin_notifications_total by "channel outcome".
func notifications(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "serin_notifications_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["channel"]+" "+l["outcome"]] = m.GetCounter().GetValue()
		}
	}
	return out
}
