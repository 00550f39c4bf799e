package readmodel

import (
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// SeriesLen is how many analysis ticks the store keeps per rollout: at the
// default 2s interval, the last ten minutes.
const SeriesLen = 300

// Point is one analysis tick of a rollout, for charts: recorded each time
// the informer delivers a new status.analysis.lastTickAt.
type Point struct {
	// Time is the tick's status.analysis.lastTickAt.
	Time time.Time `json:"time"`
	// Verdict is the tick's overall verdict: Pass, Fail or Inconclusive.
	Verdict string `json:"verdict"`
	// CanaryWeight is status.canaryWeight when the tick was recorded.
	CanaryWeight int32 `json:"canaryWeight"`
	// Checks are the tick's per-check results, in status order.
	Checks []CheckPoint `json:"checks"`
}

// CheckPoint is one check's result in a Point.
type CheckPoint struct {
	// Key identifies the check across points: Check, Hop and Source joined
	// by "|", e.g. "latency-p99|checkout → payments|jaeger".
	Key    string `json:"key"`
	Check  string `json:"check"`
	Hop    string `json:"hop,omitempty"`
	Source string `json:"source"`
	// Canary, Stable and Limit are in Unit (% or ms).
	Canary  float64 `json:"canary"`
	Stable  float64 `json:"stable"`
	Limit   float64 `json:"limit"`
	Unit    string  `json:"unit,omitempty"`
	Verdict string  `json:"verdict"`
}

// CheckKey is the Key of a check's points.
func CheckKey(check, hop, source string) string { return check + "|" + hop + "|" + source }

// pointOf makes the Point of r's latest tick, or nil when r has none.
func pointOf(r *v1alpha1.Rollout) *Point {
	a := r.Status.Analysis
	if a.LastTickAt == nil {
		return nil
	}
	p := &Point{
		Time:         a.LastTickAt.UTC(),
		Verdict:      a.LastVerdict,
		CanaryWeight: r.Status.CanaryWeight,
		Checks:       make([]CheckPoint, 0, len(a.Checks)),
	}
	for _, c := range a.Checks {
		p.Checks = append(p.Checks, CheckPoint{
			Key: CheckKey(c.Check, c.Hop, c.Source), Check: c.Check, Hop: c.Hop, Source: c.Source,
			Canary: c.Canary, Stable: c.Stable, Limit: c.Limit, Unit: c.Unit, Verdict: c.Verdict,
		})
	}
	return p
}

// clone returns a copy of p that shares nothing with it.
func (p *Point) clone() Point {
	c := *p
	c.Checks = append([]CheckPoint(nil), p.Checks...)
	return c
}

// ring holds a rollout's latest points, oldest first, at most cap(buf).
// Points in it are never modified, so events may share them.
type ring struct {
	buf   []*Point
	start int // index of the oldest point once the ring is full
}

func newRing(size int) *ring { return &ring{buf: make([]*Point, 0, size)} }

// add appends p, overwriting the oldest point when the ring is full.
func (r *ring) add(p *Point) {
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, p)
		return
	}
	r.buf[r.start] = p
	r.start = (r.start + 1) % len(r.buf)
}

// last returns the newest point, or nil.
func (r *ring) last() *Point {
	if len(r.buf) == 0 {
		return nil
	}
	return r.buf[(r.start+len(r.buf)-1)%len(r.buf)]
}

// points returns copies of the points, oldest first.
func (r *ring) points() []Point {
	out := make([]Point, 0, len(r.buf))
	for i := range r.buf {
		out = append(out, r.buf[(r.start+i)%len(r.buf)].clone())
	}
	return out
}

// record adds r's latest tick to its series when it is a new one, and
// returns the series' newest point (nil when there is none). The caller
// holds s.mu.
func (s *Store) record(r *v1alpha1.Rollout) *Point {
	key := id(r.Namespace, r.Name)
	rg := s.series[key]
	p := pointOf(r)
	if p == nil {
		return rg.lastOrNil()
	}
	if rg == nil {
		rg = newRing(SeriesLen)
		s.series[key] = rg
	}
	if last := rg.last(); last == nil || p.Time.After(last.Time) {
		rg.add(p)
	}
	return rg.last()
}

func (r *ring) lastOrNil() *Point {
	if r == nil {
		return nil
	}
	return r.last()
}

// Series returns copies of the recorded analysis ticks of the Rollout
// namespace/name, oldest first: at most SeriesLen, and an empty slice for
// a rollout without ticks or unknown to the store. A series ends with its
// Rollout's deletion.
func (s *Store) Series(namespace, name string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	rg := s.series[id(namespace, name)]
	if rg == nil {
		return []Point{}
	}
	return rg.points()
}
