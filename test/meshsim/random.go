package meshsim

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Base latency of an app's own handling: log-normal, like the service times
// of real servers, with a median of 1.8 ms and a shape that puts the mean
// near 1.9 ms and the p99 near 4 ms, close to the 1–3 ms uniform draw it
// replaced, so that latency budgets written against that still hold.
const (
	baseLatencyMedianMs = 1.8
	baseLatencySigma    = 0.35
	// baseLatencyMaxMs bounds a draw, about seven sigmas out, so that no
	// draw, however unlikely, stalls a test.
	baseLatencyMaxMs = 25
)

// stream is one seeded random sequence, safe for concurrent use.
//
// Every workload has its own streams (one for its latency, one for injected
// errors, one for background errors), all derived from Options.Seed and the
// stream's name. So the n-th draw of a stream depends only on the seed and
// n, never on how the requests to other workloads interleave: with the same
// seed, N requests to checkout-v2 fail the same number of times, and adding
// a fault does not move the background errors.
type stream struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newStream returns the stream called name of the simulation seeded with
// seed. Distinct names give independent streams.
func newStream(seed uint64, name string) *stream {
	var in [8]byte
	binary.LittleEndian.PutUint64(in[:], seed)
	key := sha256.Sum256(append(in[:], name...))
	return &stream{r: rand.New(rand.NewChaCha8(key))}
}

// float64 returns the next draw, uniform in [0,1).
func (s *stream) float64() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Float64()
}

// normFloat64 returns the next draw from the standard normal distribution.
func (s *stream) normFloat64() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.NormFloat64()
}

// bernoulli draws true with probability p. It consumes a draw only when p
// is above zero, so a workload without errors configured leaves its stream
// untouched.
func (s *stream) bernoulli(p float64) bool {
	return p > 0 && s.float64() < p
}

// streamSet holds the streams called prefix+name of one simulation, made
// on first use, so that a workload that appears later (a Deployment) gets
// its own streams and the static ones keep theirs.
type streamSet struct {
	seed   uint64
	prefix string
	m      sync.Map // name → *stream
}

// newStreamSet returns the set of streams prefix+name seeded with seed.
func newStreamSet(seed uint64, prefix string) *streamSet {
	return &streamSet{seed: seed, prefix: prefix}
}

// get returns the stream of name, making it on first use.
func (s *streamSet) get(name string) *stream {
	if st, ok := s.m.Load(name); ok {
		return st.(*stream)
	}
	st, _ := s.m.LoadOrStore(name, newStream(s.seed, s.prefix+name))
	return st.(*stream)
}

// randomSeed picks a seed for a simulation whose Options.Seed is zero. Zero
// itself is never returned, since it means "pick one".
func randomSeed() uint64 {
	for {
		if seed := rand.Uint64(); seed != 0 {
			return seed
		}
	}
}

// baseLatency draws an app's own handling time from r: log-normal with the
// median and shape above, at most baseLatencyMaxMs.
func baseLatency(r *stream) time.Duration {
	ms := baseLatencyMedianMs * math.Exp(baseLatencySigma*r.normFloat64())
	return time.Duration(min(ms, baseLatencyMaxMs) * float64(time.Millisecond))
}
