package istioexporter

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// newRand returns the random stream called name of an exporter seeded with
// seed. Every version of every service has its own stream, so its draws do
// not depend on how the other services' steps interleave.
func newRand(seed uint64, name string) *rand.Rand {
	var in [8]byte
	binary.LittleEndian.PutUint64(in[:], seed)
	key := sha256.Sum256(append(in[:], name...))
	return rand.New(rand.NewChaCha8(key))
}

// poissonExact is the mean below which poisson draws exactly (Knuth's
// product of uniforms, about mean+1 draws); above it the normal
// approximation is within a fraction of a request of the exact law.
const poissonExact = 30

// poisson draws a Poisson count with the given mean.
func poisson(r *rand.Rand, mean float64) int {
	switch {
	case mean <= 0 || math.IsNaN(mean):
		return 0
	case mean < poissonExact:
		limit := math.Exp(-mean)
		n, p := 0, r.Float64()
		for p > limit {
			n++
			p *= r.Float64()
		}
		return n
	default:
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
}

// Latency of one request, in milliseconds: log-normal, like the service
// times of real servers, bounded so that no draw is absurd.
const (
	inboundMedianMs = 5
	hopMedianMs     = 2
	latencySigma    = 0.5
	maxLatencyMs    = 1000
)

// latencyMs draws one latency with the given median.
func latencyMs(r *rand.Rand, median float64) float64 {
	return min(median*math.Exp(latencySigma*r.NormFloat64()), maxLatencyMs)
}

// randomSeed picks a seed for an exporter whose Options.Seed is zero.
func randomSeed() uint64 { return rand.Uint64() }
