package readmodel

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// TestLiveShowsTheLatestTickOfTheStoredVersion: the controller's unwritten
// tick is shown, recorded in the series and sent to subscribers, only for
// the version the store holds and only if it is newer; a resync of that
// version keeps it, and the next written version replaces it.
func TestLiveShowsTheLatestTickOfTheStoredVersion(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	version := func(rv string, tick time.Duration, canary float64) *v1alpha1.Rollout {
		r := ro("shop", "checkout", "vs", v1alpha1.PhaseProgressing)
		r.UID, r.ResourceVersion = "u1", rv
		r.Status.Analysis.LastTickAt = &metav1.Time{Time: t0.Add(tick)}
		r.Status.Analysis.Checks = []v1alpha1.CheckStatus{{Check: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: canary}}
		return r
	}
	canaryOf := func(s *Store) float64 {
		r, _ := s.Get("shop", "checkout")
		return r.Status.Analysis.Checks[0].Canary
	}
	s, _ := New()
	must(t, s.Upsert(version("10", 0, 0.1)))
	events, cancel := s.Subscribe(10)
	defer cancel()

	s.Live(version("10", 2*time.Second, 0.2))
	if got := canaryOf(s); got != 0.2 {
		t.Fatalf("after a live tick the store shows %v, want 0.2", got)
	}
	if e := <-events; e.Type != EventUpsert || e.Point == nil || !e.Point.Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("the live tick's event: %+v", e)
	}
	for _, stale := range []*v1alpha1.Rollout{
		version("10", time.Second, 0.9),   // an older tick
		version("10", 2*time.Second, 0.9), // the same tick
		version("9", 4*time.Second, 0.9),  // of an older version
		version("11", 4*time.Second, 0.9), // of a version the store does not hold yet
	} {
		s.Live(stale)
		if got := canaryOf(s); got != 0.2 {
			t.Errorf("a live tick of version %s at %v replaced the shown one: %v", stale.ResourceVersion, stale.Status.Analysis.LastTickAt.Time, got)
		}
	}
	other := version("10", 6*time.Second, 0.9)
	other.UID = "u2" // deleted and created again
	s.Live(other)
	if got := canaryOf(s); got != 0.2 {
		t.Errorf("a live tick of another object replaced the shown one: %v", got)
	}

	must(t, s.Upsert(version("10", 0, 0.1))) // a resync of the stored version
	if got := canaryOf(s); got != 0.2 {
		t.Errorf("a resync replaced the live tick: %v", got)
	}
	must(t, s.Upsert(version("12", 8*time.Second, 0.3))) // the next write
	if got := canaryOf(s); got != 0.3 {
		t.Errorf("the next written version shows %v, want 0.3", got)
	}
	var times []time.Time
	for _, p := range s.Series("shop", "checkout") {
		times = append(times, p.Time)
	}
	if len(times) != 3 || !times[0].Equal(t0) || !times[1].Equal(t0.Add(2*time.Second)) || !times[2].Equal(t0.Add(8*time.Second)) {
		t.Errorf("series times %v, want 0 s, 2 s, 8 s after t0", times)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
