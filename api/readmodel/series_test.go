package readmodel

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// ticked is ro with an analysis tick at t, canary weight w and one check.
func ticked(t time.Time, w int32, canary float64) *v1alpha1.Rollout {
	r := ro("shop", "a", "vs", v1alpha1.PhaseProgressing)
	tick := metav1.NewTime(t)
	r.Status.CanaryWeight = w
	r.Status.Analysis = v1alpha1.AnalysisStatus{LastTickAt: &tick, LastVerdict: "Pass", Checks: []v1alpha1.CheckStatus{{
		Check: "latency-p99", Hop: "a → b", Source: "jaeger", Verdict: "Pass",
		Canary: canary, Stable: 100, Limit: 150, Unit: "ms",
	}}}
	return r
}

func TestSeries(t *testing.T) {
	s, _ := New()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	events, cancel := s.Subscribe(SeriesLen + 20)
	defer cancel()

	_ = s.Upsert(ro("shop", "a", "vs", "")) // no tick yet
	if got := s.Series("shop", "a"); len(got) != 0 {
		t.Fatalf("series before the first tick = %v", got)
	}
	if e := <-events; e.Point != nil {
		t.Errorf("event before the first tick has point %+v", e.Point)
	}
	_ = s.Upsert(ticked(t0, 10, 90))
	r := ticked(t0, 25, 90) // same tick, other change: no new point
	r.Status.Message = "advanced"
	_ = s.Upsert(r)
	_ = s.Upsert(ticked(t0.Add(2*time.Second), 25, 120))

	got := s.Series("shop", "a")
	if len(got) != 2 {
		t.Fatalf("series has %d points, want 2: %+v", len(got), got)
	}
	want := CheckPoint{Key: "latency-p99|a → b|jaeger", Check: "latency-p99", Hop: "a → b", Source: "jaeger",
		Canary: 120, Stable: 100, Limit: 150, Unit: "ms", Verdict: "Pass"}
	if p := got[1]; !p.Time.Equal(t0.Add(2*time.Second)) || p.CanaryWeight != 25 || p.Verdict != "Pass" || len(p.Checks) != 1 || p.Checks[0] != want {
		t.Errorf("second point = %+v", p)
	}
	if got[0].CanaryWeight != 10 || got[0].Checks[0].Canary != 90 {
		t.Errorf("first point = %+v", got[0])
	}
	// The events carry the newest point.
	for i, wantTime := range []time.Time{t0, t0, t0.Add(2 * time.Second)} {
		if e := <-events; e.Point == nil || !e.Point.Time.Equal(wantTime) {
			t.Errorf("event %d point = %+v, want time %v", i, e.Point, wantTime)
		}
	}
	// Copies: a caller's change does not reach the store.
	got[1].Checks[0].Canary = -1
	if again := s.Series("shop", "a"); again[1].Checks[0].Canary != 120 {
		t.Error("a caller's change leaked into the series")
	}
}

func TestSeriesBoundedAndDropped(t *testing.T) {
	s, _ := New()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range SeriesLen + 7 {
		_ = s.Upsert(ticked(t0.Add(time.Duration(i)*time.Second), int32(i%100), float64(i)))
	}
	got := s.Series("shop", "a")
	if len(got) != SeriesLen {
		t.Fatalf("series has %d points, want %d", len(got), SeriesLen)
	}
	for i, p := range got {
		if want := float64(i + 7); p.Checks[0].Canary != want {
			t.Fatalf("point %d has canary %v, want %v (oldest first, oldest dropped)", i, p.Checks[0].Canary, want)
		}
	}
	_ = s.Delete("shop", "a")
	if got := s.Series("shop", "a"); len(got) != 0 {
		t.Errorf("series after delete has %d points", len(got))
	}
	_ = s.Upsert(ticked(t0, 10, 1)) // a new rollout of the same name starts afresh
	if got := s.Series("shop", "a"); len(got) != 1 {
		t.Errorf("series of a recreated rollout has %d points, want 1", len(got))
	}
}
