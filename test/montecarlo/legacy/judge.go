package legacy

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Evaluate judges a tick's measurements as analysis.Evaluate did at
// 21650dc: Fail when any check fails, else Inconclusive when any is
// inconclusive or none passed, else Pass.
func Evaluate(ms []Measurement, cfg Config) Result {
	res := Result{Verdict: Pass}
	var fails, inconc []CheckResult
	passed := 0
	for _, m := range ms {
		cr := judge(m, cfg)
		res.Checks = append(res.Checks, cr)
		switch cr.Verdict {
		case Fail:
			fails = append(fails, cr)
			res.FastFail = res.FastFail || cr.FastFail
		case Inconclusive:
			inconc = append(inconc, cr)
		case Pass:
			passed++
		}
	}
	switch {
	case len(fails) > 0:
		sort.SliceStable(fails, func(i, j int) bool { return fails[i].FastFail && !fails[j].FastFail })
		res.Verdict, res.Reason = Fail, joinReasons(fails)
	case len(inconc) > 0:
		res.Verdict, res.Reason = Inconclusive, joinReasons(inconc)
	case passed == 0:
		res.Verdict, res.Reason = Inconclusive, "no check could be evaluated"
	default:
		res.Reason = fmt.Sprintf("all %d checks passed", passed)
	}
	return res
}

func joinReasons(crs []CheckResult) string {
	parts := make([]string, len(crs))
	for i, c := range crs {
		parts[i] = c.Reason
	}
	return strings.Join(parts, "; ")
}

func judge(m Measurement, cfg Config) CheckResult {
	cr := CheckResult{Check: m.Check, Kind: m.Kind, Hop: m.Hop}
	where := describe(m)
	if m.Err != nil {
		cr.Verdict = Inconclusive
		if m.Fast {
			cr.Verdict = Skipped
		}
		cr.Reason = fmt.Sprintf("%s: no data (%v)", where, m.Err)
		return cr
	}
	if m.Kind == KindErrorRate {
		cr = judgeErrorRate(cr, m, cfg, where)
	} else {
		cr = judgeLatency(cr, m, cfg, where)
	}
	if m.Fast && !(cr.Verdict == Fail && cr.FastFail) {
		cr.Verdict = Skipped
	}
	return cr
}

func describe(m Measurement) string {
	s := m.Check
	if m.Hop != "" {
		s += " on " + m.Hop
	} else {
		s += " (inbound)"
	}
	if m.Fast {
		s += " over the last few seconds"
	}
	return s
}

// enough reports whether the canary has a sample worth judging.
func enough(cr *CheckResult, m Measurement, cfg Config, where string) bool {
	need := cfg.MinRequests
	if m.Fast {
		need = max(5, math.Ceil(cfg.MinRequests/4))
	}
	if m.Pair.Canary.Requests >= need {
		return true
	}
	cr.Verdict = Inconclusive
	if m.Hop != "" {
		cr.Verdict = Skipped
	}
	cr.Reason = fmt.Sprintf("%s: only %.0f canary requests in the window, need %.0f", where, m.Pair.Canary.Requests, need)
	return false
}

func stableValue(s Stats, cfg Config, v float64) float64 {
	if s.Requests < cfg.MinRequests {
		return math.NaN()
	}
	return v
}

func judgeErrorRate(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	if !enough(&cr, m, cfg, where) {
		return cr
	}
	c := m.Pair.Canary.ErrorRate()
	s := stableValue(m.Pair.Stable, cfg, m.Pair.Stable.ErrorRate())
	limit := m.Limit.Bound(s)
	cr.Canary, cr.Stable, cr.Limit = 100*c, 100*s, 100*limit
	if c <= limit {
		cr.Verdict, cr.Reason = Pass, fmt.Sprintf("%s: canary %.2f%% within %.2f%%", where, 100*c, 100*limit)
		return cr
	}
	if p := binomialTail(m.Pair.Canary.Errors, m.Pair.Canary.Requests, limit); p >= cfg.Significance {
		cr.Verdict = Inconclusive
		cr.Reason = fmt.Sprintf("%s: canary %.2f%% above %.2f%% but not yet significant (p=%.2f)", where, 100*c, 100*limit, p)
		return cr
	}
	cr.Verdict, cr.Reason = Fail, fmt.Sprintf("%s failed: canary %.2f%% vs limit %.2f%%", where, 100*c, 100*limit)
	cr.FastFail = c >= cfg.FastFailFactor*m.Limit.Max
	return cr
}

func judgeLatency(cr CheckResult, m Measurement, cfg Config, where string) CheckResult {
	if !enough(&cr, m, cfg, where) {
		return cr
	}
	c := m.Pair.Canary.P99Ms
	if math.IsNaN(c) {
		cr.Verdict, cr.Reason = Inconclusive, where+": the canary's p99 cannot be computed"
		return cr
	}
	s := stableValue(m.Pair.Stable, cfg, m.Pair.Stable.P99Ms)
	limit := m.Limit.Bound(s)
	cr.Canary, cr.Stable, cr.Limit = c, s, limit
	if c <= limit {
		cr.Verdict, cr.Reason = Pass, fmt.Sprintf("%s: p99 %.0f ms within %.0f ms", where, c, limit)
		return cr
	}
	n := m.Pair.Canary.Requests
	if above := m.Pair.Canary.above(limit); !math.IsNaN(above) {
		if p := binomialTail(math.Round(above), n, 0.01); p >= cfg.Significance {
			cr.Verdict = Inconclusive
			cr.Reason = fmt.Sprintf("%s: p99 %.0f ms above %.0f ms, not yet significant (p=%.2f)", where, c, limit, p)
			return cr
		}
	}
	cr.Verdict, cr.Reason = Fail, fmt.Sprintf("%s failed: p99 %.0f ms vs limit %.0f ms", where, c, limit)
	cr.FastFail = c >= cfg.FastFailFactor*m.Limit.Max
	return cr
}

// above estimates how many requests took longer than ms from the buckets,
// by linear interpolation inside the bucket that holds ms.
func (s Stats) above(ms float64) float64 {
	if len(s.Buckets) == 0 {
		return math.NaN()
	}
	total := s.Buckets[len(s.Buckets)-1].Count
	prevUpper, prevCount := 0.0, 0.0
	for _, b := range s.Buckets {
		if ms <= b.UpperMs {
			if math.IsInf(b.UpperMs, 1) {
				return total - prevCount
			}
			frac := (ms - prevUpper) / (b.UpperMs - prevUpper)
			return total - (prevCount + frac*(b.Count-prevCount))
		}
		prevUpper, prevCount = b.UpperMs, b.Count
	}
	return 0
}

// binomialTail is P(X >= k) for X ~ Binomial(n, p). k and n are rounded:
// a count of 1.5 extrapolated errors is tested as 2.
func binomialTail(k, n, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1
	}
	ki, ni := int(math.Round(k)), int(math.Round(n))
	sum := 0.0
	for i := 0; i < ki && i <= ni; i++ {
		sum += math.Exp(logChoose(ni, i) + float64(i)*math.Log(p) + float64(ni-i)*math.Log1p(-p))
	}
	return math.Max(0, 1-sum)
}

func logChoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// WithP99 returns s with buckets (cumulative, from increase() of each le)
// and their p99, as the old Prometheus source computed it.
func WithP99(s Stats, buckets []Bucket) Stats {
	s.Buckets = slices.Clone(buckets)
	s.P99Ms = bucketQuantile(0.99, s.Buckets)
	return s
}

// bucketQuantile is PromQL's histogram_quantile on cumulative buckets, as
// analysis/prometheus/quantile.go computed it: NaN without a +Inf bucket
// or observations; decreasing counts raised to the previous one; a rank
// in the +Inf bucket gives the highest finite bound; otherwise linear
// interpolation inside the bucket. It sorts and may modify buckets.
func bucketQuantile(q float64, buckets []Bucket) float64 {
	if len(buckets) < 2 {
		return math.NaN()
	}
	slices.SortFunc(buckets, func(a, b Bucket) int {
		switch {
		case a.UpperMs < b.UpperMs:
			return -1
		case a.UpperMs > b.UpperMs:
			return 1
		}
		return 0
	})
	if !math.IsInf(buckets[len(buckets)-1].UpperMs, 1) {
		return math.NaN()
	}
	prev := buckets[0].Count
	for i := 1; i < len(buckets); i++ {
		if c := buckets[i].Count; c < prev || almostEqual(prev, c) {
			buckets[i].Count = prev
		} else {
			prev = c
		}
	}
	observations := buckets[len(buckets)-1].Count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].Count >= rank })
	if b == len(buckets)-1 {
		return buckets[len(buckets)-2].UpperMs
	}
	if b == 0 && buckets[0].UpperMs <= 0 {
		return buckets[0].UpperMs
	}
	start, end, count := 0.0, buckets[b].UpperMs, buckets[b].Count
	if b > 0 {
		start = buckets[b-1].UpperMs
		count -= buckets[b-1].Count
		rank -= buckets[b-1].Count
	}
	return start + (end-start)*(rank/count)
}

// almostEqual is PromQL's tolerance for floating point noise between
// successive bucket counts.
func almostEqual(a, b float64) bool {
	const epsilon = 1e-12
	if a == b {
		return true
	}
	minNormal := math.Float64frombits(0x0010000000000000)
	absSum := math.Abs(a) + math.Abs(b)
	diff := math.Abs(a - b)
	if a == 0 || b == 0 || absSum < minNormal {
		return diff < epsilon*minNormal
	}
	return diff/math.Min(absSum, math.MaxFloat64) < epsilon
}
