package prometheus

import (
	"math"
	"slices"
	"sort"
)

// bucket is one cumulative bucket of a classic histogram: the number of
// observations less than or equal to upperBound.
type bucket struct {
	upperBound float64
	count      float64
}

// smallDeltaTolerance is the relative difference between successive bucket
// counts that PromQL treats as floating point noise (promql/quantile.go).
const smallDeltaTolerance = 1e-12

// bucketQuantile returns the q-quantile of a classic histogram given as
// cumulative buckets, with the same algorithm as PromQL's
// histogram_quantile (BucketQuantile in promql/quantile.go), so that the
// p99 computed here from the batched query equals the one a user gets from
// histogram_quantile in Prometheus:
//   - the buckets are sorted by upper bound and ones with the same bound
//     are added up;
//   - without a +Inf bucket, with fewer than two buckets or without
//     observations the result is NaN;
//   - counts that decrease are raised to the previous count (the raw sums
//     read here only decrease when a series is missing from the sum of
//     some le, but a caller's difference of two readings may across a
//     counter reset, and increase() extrapolates each bucket separately);
//   - a rank in the +Inf bucket returns the highest finite bound;
//   - otherwise the value is interpolated linearly inside the bucket, the
//     first bucket starting at 0 (or returning its bound if that is <= 0).
//
// It sorts and may modify buckets.
func bucketQuantile(q float64, buckets []bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(+1)
	case len(buckets) == 0:
		return math.NaN()
	}
	slices.SortFunc(buckets, func(a, b bucket) int {
		switch {
		case a.upperBound < b.upperBound:
			return -1
		case a.upperBound > b.upperBound:
			return +1
		}
		return 0
	})
	if !math.IsInf(buckets[len(buckets)-1].upperBound, +1) {
		return math.NaN()
	}
	buckets = coalesceBuckets(buckets)
	ensureMonotonic(buckets)
	if len(buckets) < 2 {
		return math.NaN()
	}
	observations := buckets[len(buckets)-1].count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].count >= rank })
	if b == len(buckets)-1 {
		return buckets[len(buckets)-2].upperBound
	}
	if b == 0 && buckets[0].upperBound <= 0 {
		return buckets[0].upperBound
	}
	bucketStart, bucketEnd, count := 0.0, buckets[b].upperBound, buckets[b].count
	if b > 0 {
		bucketStart = buckets[b-1].upperBound
		count -= buckets[b-1].count
		rank -= buckets[b-1].count
	}
	return bucketStart + (bucketEnd-bucketStart)*(rank/count)
}

// coalesceBuckets adds up the counts of sorted buckets with the same upper
// bound, as PromQL does when several series end up with the same le.
func coalesceBuckets(buckets []bucket) []bucket {
	last := buckets[0]
	i := 0
	for _, b := range buckets[1:] {
		if b.upperBound == last.upperBound {
			last.count += b.count
			continue
		}
		buckets[i] = last
		last = b
		i++
	}
	buckets[i] = last
	return buckets[:i+1]
}

// ensureMonotonic ignores numerically insignificant differences between
// successive counts and removes any decrease, as PromQL's
// ensureMonotonicAndIgnoreSmallDeltas does.
func ensureMonotonic(buckets []bucket) {
	prev := buckets[0].count
	for i := 1; i < len(buckets); i++ {
		curr := buckets[i].count
		switch {
		case curr == prev:
		case almostEqual(prev, curr, smallDeltaTolerance), curr < prev:
			buckets[i].count = prev
		default:
			prev = curr
		}
	}
}

// minNormal is the smallest positive normal float64.
var minNormal = math.Float64frombits(0x0010000000000000)

// almostEqual reports whether a and b differ by less than their sum times
// epsilon (Prometheus' util/almost.Equal without the stale-marker case,
// which never reaches a query result).
func almostEqual(a, b, epsilon float64) bool {
	if a == b {
		return true
	}
	absSum := math.Abs(a) + math.Abs(b)
	diff := math.Abs(a - b)
	if a == 0 || b == 0 || absSum < minNormal {
		return diff < epsilon*minNormal
	}
	return diff/math.Min(absSum, math.MaxFloat64) < epsilon
}
