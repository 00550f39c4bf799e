package montecarlo

import (
	"fmt"
	"math"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/test/montecarlo/legacy"
)

// snapshot is one scrape: every series that existed then, with its count
// and cumulative buckets. vals[0] is the request count, vals[1+i] the
// count at or below the i-th bound (the last is +Inf).
type snapshot struct {
	at     int64 // ms since the rollout's start, as Prometheus stores it
	exists [numScopes][2][2]bool
	vals   [numScopes][2][2][]float64
}

// prom stands in for Prometheus: it scrapes the mesh's counters every
// scrape interval and answers the two kinds of query serin makes, the
// instant sum of the raw counters (the new judge) and increase() over a
// window (the old one). It keeps the scrapes of the last keep only.
type prom struct {
	base  time.Time // the rollout's start
	ring  []snapshot
	next  int // the ring slot the next scrape goes in
	count int // scrapes taken
}

// keep is how far back the stand-in answers queries: more than the old
// judge's widest window (2.5 × 15 s) and than a tick.
const keep = 70 * time.Second

func newProm(base time.Time, scrape time.Duration) *prom {
	n := int(keep/scrape) + 2
	p := &prom{base: base, ring: make([]snapshot, n)}
	for i := range p.ring {
		for sc := range numScopes {
			for side := range 2 {
				for code := range 2 {
					p.ring[i].vals[sc][side][code] = make([]float64, 1+numBins)
				}
			}
		}
	}
	return p
}

// scrape records the mesh's counters at at.
func (p *prom) scrape(m *mesh, at time.Duration) {
	s := &p.ring[p.next]
	p.next = (p.next + 1) % len(p.ring)
	p.count++
	s.at = at.Milliseconds()
	for sc := range numScopes {
		for side := range 2 {
			for code := range 2 {
				src := &m.s[sc][side][code]
				s.exists[sc][side][code] = src.exists
				v := s.vals[sc][side][code]
				v[0] = src.count
				cum := 0.0
				for i, b := range src.bins {
					cum += b
					v[1+i] = cum
				}
			}
		}
	}
}

// ordered returns the stored scrapes, oldest first.
func (p *prom) ordered() []*snapshot {
	n := min(p.count, len(p.ring))
	out := make([]*snapshot, 0, n)
	for i := range n {
		out = append(out, &p.ring[(p.next-n+i+len(p.ring))%len(p.ring)])
	}
	return out
}

// latest is the last scrape at or before at, or nil.
func (p *prom) latest(at int64) *snapshot {
	var best *snapshot
	for _, s := range p.ordered() {
		if s.at <= at {
			best = s
		}
	}
	return best
}

func (p *prom) ms(at time.Time) int64 { return at.Sub(p.base).Milliseconds() }

// instant is what the new MetricSource returns for one scope at at: the
// sum of each side's raw counters as of the last scrape. A side with no
// series has zero counters and no buckets.
func (p *prom) instant(scope int, at time.Time) analysis.Pair {
	s := p.latest(p.ms(at))
	if s == nil {
		return analysis.Pair{}
	}
	var out [2]analysis.Stats
	for side := range 2 {
		var sum []float64
		for code := range 2 {
			if !s.exists[scope][side][code] {
				continue
			}
			v := s.vals[scope][side][code]
			if sum == nil {
				sum = make([]float64, len(v))
			}
			for i, x := range v {
				sum[i] += x
			}
			if code == code5xx {
				out[side].Errors = v[0]
			}
		}
		if sum == nil {
			continue
		}
		out[side].Requests = sum[0]
		out[side].P99Ms = math.NaN()
		out[side].Buckets = make([]analysis.Bucket, numBins)
		for i := range numBins {
			out[side].Buckets[i] = analysis.Bucket{UpperMs: upperBound(i), Count: sum[1+i]}
		}
	}
	return analysis.Pair{Canary: out[canary], Stable: out[stable]}
}

// upperBound is the le of the i-th bucket.
func upperBound(i int) float64 {
	if i < len(analysis.IstioBuckets) {
		return analysis.IstioBuckets[i]
	}
	return math.Inf(1)
}

// windowed is what the old MetricSource returned for one scope:
// sum by (response_code) and sum by (le) of increase() over the window
// ending at at, each side's p99 computed from its buckets. found is false
// for a side none of whose series has two samples in the window (PromQL
// drops those).
func (p *prom) windowed(scope int, window time.Duration, at time.Time) (pair legacy.Pair, found [2]bool) {
	end := p.ms(at)
	start := end - window.Milliseconds()
	var in []*snapshot
	for _, s := range p.ordered() {
		if s.at >= start && s.at <= end {
			in = append(in, s)
		}
	}
	var out [2]legacy.Stats
	for side := range 2 {
		var buckets []float64
		for code := range 2 {
			var ts []int64
			var vs [][]float64
			for _, s := range in {
				if s.exists[scope][side][code] {
					ts = append(ts, s.at)
					vs = append(vs, s.vals[scope][side][code])
				}
			}
			if len(ts) < 2 {
				continue
			}
			found[side] = true
			if buckets == nil {
				buckets = make([]float64, numBins)
			}
			for j := range 1 + numBins {
				inc := increase(ts, vs, j, start, end)
				switch {
				case j == 0:
					out[side].Requests += inc
					if code == code5xx {
						out[side].Errors += inc
					}
				default:
					buckets[j-1] += inc
				}
			}
		}
		bs := make([]legacy.Bucket, len(buckets))
		for i, c := range buckets {
			bs[i] = legacy.Bucket{UpperMs: upperBound(i), Count: c}
		}
		out[side] = legacy.WithP99(out[side], bs)
	}
	return legacy.Pair{Canary: out[canary], Stable: out[stable]}, found
}

// increase is PromQL's increase() of one value (column j) of a series whose
// samples in the range [start, end] (ms, both ends included, as in
// Prometheus 2.x, which the local stack runs) are at ts. It is
// extrapolatedRate of promql/functions.go: the difference between the
// last and first samples, corrected for counter resets, then stretched
// towards the range's edges. An edge within 1.1 average sample intervals
// of the first or last sample is extrapolated to fully; a farther one
// (the series starts or ends inside the range) by half an interval only.
// The start is never extrapolated past the counter's zero point: a series
// created inside the window is not counted from zero, so its first
// sample's value (the first requests, or the first 5xx) is lost.
func increase(ts []int64, vs [][]float64, j int, start, end int64) float64 {
	n := len(ts)
	first, last := vs[0][j], vs[n-1][j]
	result := last - first
	prev := 0.0
	for _, v := range vs {
		if v[j] < prev {
			result += prev
		}
		prev = v[j]
	}
	toStart := float64(ts[0]-start) / 1000
	toEnd := float64(end-ts[n-1]) / 1000
	sampled := float64(ts[n-1]-ts[0]) / 1000
	avg := sampled / float64(n-1)
	if result > 0 && first >= 0 {
		if toZero := sampled * (first / result); toZero < toStart {
			toStart = toZero
		}
	}
	threshold := avg * 1.1
	extrapolated := sampled
	if toStart < threshold {
		extrapolated += toStart
	} else {
		extrapolated += avg / 2
	}
	if toEnd < threshold {
		extrapolated += toEnd
	} else {
		extrapolated += avg / 2
	}
	return result * (extrapolated / sampled)
}

// legacySource is the old MetricSource on the stand-in Prometheus: windows
// of increase(), a side without series an error.
type legacySource struct{ p *prom }

func (s legacySource) Inbound(window time.Duration, at time.Time) (legacy.Pair, error) {
	pair, found := s.p.windowed(scopeInbound, window, at)
	for side, name := range [2]string{"canary", "stable"} {
		if !found[side] {
			return pair, fmt.Errorf("no inbound series for checkout %s: %w", name, legacy.ErrNoData)
		}
	}
	return pair, nil
}

// Hops keys a hop by its called service; a hop seen on one side only
// still appears, with zero Stats on the other.
func (s legacySource) Hops(window time.Duration, at time.Time) (map[string]legacy.Pair, error) {
	out := map[string]legacy.Pair{}
	for i, h := range hops {
		pair, found := s.p.windowed(scopePayments+i, window, at)
		if found[canary] || found[stable] {
			out[h.name] = pair
		}
	}
	return out, nil
}
