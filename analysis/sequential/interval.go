package sequential

import (
	"math"
	"sync"
)

// Interval is a range [Low, High] for an unknown value.
type Interval struct{ Low, High float64 }

// ProportionInterval returns a (1-alpha) confidence sequence for a
// proportion after k successes in n trials: an interval that covers the
// true proportion at every n at once with probability at least 1-alpha, so
// it stays honest however often it is shown. It inverts the beta-binomial
// mixture martingale with a Jeffreys Beta(½, ½) mixing density: p is in
// the interval while that martingale, computed as if p were true, stays
// below 1/alpha. With n = 0 it is [0, 1].
func ProportionInterval(k, n, alpha float64) Interval {
	n = math.Max(n, 0)
	k = math.Min(math.Max(k, 0), n)
	if n == 0 {
		return Interval{0, 1}
	}
	key := intervalKey{k, n, alpha}
	if iv, ok := intervals.get(key); ok {
		return iv
	}
	iv := proportionInterval(k, n, alpha)
	intervals.put(key, iv)
	return iv
}

// intervalKey is the arguments of one interval.
type intervalKey struct{ k, n, alpha float64 }

// intervalMemo remembers the latest intervals computed. A thousand
// rollouts each show several intervals on every tick, and a tick with no
// new data (the shared answer has not changed) asks for the same ones
// again: at that count the bisections were a tenth of the controller's
// CPU. It is bounded: when full it starts again empty.
type intervalMemo struct {
	mu sync.Mutex
	m  map[intervalKey]Interval
}

// maxMemoIntervals bounds the memo: a few intervals per check of a
// thousand rollouts, a few MB at most.
const maxMemoIntervals = 1 << 16

var intervals = intervalMemo{m: map[intervalKey]Interval{}}

func (c *intervalMemo) get(k intervalKey) (Interval, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	iv, ok := c.m[k]
	return iv, ok
}

func (c *intervalMemo) put(k intervalKey, iv Interval) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxMemoIntervals {
		clear(c.m)
	}
	c.m[k] = iv
}

// proportionInterval computes ProportionInterval for n > 0.
func proportionInterval(k, n, alpha float64) Interval {
	limit := math.Log(1 / alpha)
	// log of the mixture's marginal likelihood, B(½+k, ½+n-k)/B(½, ½).
	marginal := logBeta(0.5+k, 0.5+n-k) - logBeta(0.5, 0.5)
	logE := func(p float64) float64 {
		return marginal - xlogy(k, p) - xlogy(n-k, 1-p)
	}
	hat := k / n
	return Interval{
		Low:  bisect(0, hat, func(p float64) bool { return logE(p) < limit }),
		High: bisect(1, hat, func(p float64) bool { return logE(p) < limit }),
	}
}

// bisect finds, between out (outside the set, or its edge) and in (inside
// it), the boundary of the set where inside is true. The set is an
// interval around the estimate, so bisection converges.
func bisect(out, in float64, inside func(float64) bool) float64 {
	if inside(out) {
		return out
	}
	for range 60 {
		mid := (out + in) / 2
		if inside(mid) {
			in = mid
		} else {
			out = mid
		}
	}
	return in
}

func logBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// xlogy is x·log(y) with 0·log(0) = 0.
func xlogy(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(y)
}
