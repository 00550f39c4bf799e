package prometheus

import (
	"math"
	"testing"
)

// TestBucketQuantile checks bucketQuantile against results of PromQL's
// histogram_quantile on the same buckets, taken from Prometheus'
// promql/promqltest/testdata/histograms.test (values at 50m, i.e. ten
// times the per-step increase).
func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(+1)
	positive := []bucket{{0.1, 50}, {0.2, 70}, {1, 110}, {inf, 120}}
	negative := []bucket{{-0.2, 10}, {-0.1, 20}, {0.3, 20}, {inf, 30}}
	aggregated := []bucket{{0.1, 100}, {0.2, 190}, {inf, 250}}
	nonmonotonic := []bucket{{0.1, 20}, {1, 10}, {10, 50}, {100, 40}, {1000, 90}, {inf, 80}}
	mixed := []bucket{{0.1, 10}, {0.2, 10}, {0.2, 10}, {0.2, 10}, {inf, 40}} // le="0.2", "2e-1", "2.0e-1"
	istio := []bucket{{250, 0}, {500, 100}, {1000, 100}, {inf, 100}}

	tests := []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
	}{
		{"positive q=0", 0, positive, 0},
		{"positive q=0.2", 0.2, positive, 0.048},
		{"positive q=0.5", 0.5, positive, 0.15},
		{"positive q=0.8", 0.8, positive, 0.72},
		{"positive q=1 is the highest finite bound", 1, positive, 1},
		{"negative q=0", 0, negative, -0.2},
		{"negative q=0.2", 0.2, negative, -0.2},
		{"negative q=0.5", 0.5, negative, -0.15},
		{"negative q=0.8 in +Inf", 0.8, negative, 0.3},
		{"aggregated q=0.3", 0.3, aggregated, 0.075},
		{"aggregated q=0.5", 0.5, aggregated, 0.1277777777777778},
		{"nonmonotonic q=0.01", 0.01, nonmonotonic, 0.0045},
		{"nonmonotonic q=0.5", 0.5, nonmonotonic, 8.5},
		{"nonmonotonic q=0.99", 0.99, nonmonotonic, 979.75},
		{"same bound coalesced", 0.5, mixed, 0.15},
		{"p99 inside (250,500]", 0.99, istio, 497.5},
		{"unsorted input", 0.5, []bucket{{inf, 120}, {1, 110}, {0.1, 50}, {0.2, 70}}, 0.15},
		{"q<0", -0.1, positive, math.Inf(-1)},
		{"q>1", 1.01, positive, math.Inf(+1)},
		{"q NaN", math.NaN(), positive, math.NaN()},
		{"no +Inf bucket", 0.5, []bucket{{0.1, 5}, {1, 10}}, math.NaN()},
		{"only +Inf", 0.5, []bucket{{inf, 10}}, math.NaN()},
		{"zero observations", 0.2, []bucket{{0.1, 0}, {0.2, 0}, {inf, 0}}, math.NaN()},
		{"no buckets", 0.99, nil, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buckets := append([]bucket(nil), tt.buckets...)
			got := bucketQuantile(tt.q, buckets)
			if !sameFloat(got, tt.want) {
				t.Errorf("bucketQuantile(%v, %v) = %v, want %v", tt.q, tt.buckets, got, tt.want)
			}
		})
	}
}

// sameFloat compares floats with a small tolerance; NaN equals NaN.
func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func nan() float64 { return math.NaN() }
