package montecarlo

import (
	"math"
	"math/rand/v2"
)

// rng draws the counts of simulated traffic. The samplers are exact: the
// counts of a Poisson process over an interval are Poisson, and a fixed
// number of requests spread over buckets is multinomial. Exactness
// matters here, because the judges' false alarms live in the tails.
type rng struct{ r *rand.Rand }

func newRNG(seed, stream uint64) rng { return rng{rand.New(rand.NewPCG(seed, stream))} }

// poisson draws from Poisson(lam): by inversion for small means, else by
// Hörmann's transformed rejection with squeeze (PTRS, 1993).
func (g rng) poisson(lam float64) float64 {
	switch {
	case lam <= 0:
		return 0
	case lam < 10:
		p := math.Exp(-lam)
		f, u, k := p, g.r.Float64(), 0.0
		for u > f && k < 1000 {
			k++
			p *= lam / k
			f += p
		}
		return k
	}
	slam, loglam := math.Sqrt(lam), math.Log(lam)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invAlpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := g.r.Float64() - 0.5
		v := g.r.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lam + 0.43)
		if us >= 0.07 && v <= vr {
			return k
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invAlpha)-math.Log(a/(us*us)+b) <= -lam+k*loglam-lg {
			return k
		}
	}
}

// binomial draws from Binomial(n, p): by inversion when n·p is small,
// else by Hörmann's BTRS (1993).
func (g rng) binomial(n, p float64) float64 {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - g.binomial(n, 1-p)
	case n*p < 10:
		q := 1 - p
		s := p / q
		a := (n + 1) * s
		r := math.Pow(q, n)
		u := g.r.Float64()
		x := 0.0
		for u > r && x < n {
			u -= r
			x++
			r *= a/x - s
		}
		return x
	}
	spq := math.Sqrt(n * p * (1 - p))
	b := 1.15 + 2.53*spq
	a := -0.0873 + 0.0248*b + 0.01*p
	c := n*p + 0.5
	vr := 0.92 - 4.2/b
	alpha := (2.83 + 5.1/b) * spq
	lpq := math.Log(p / (1 - p))
	m := math.Floor((n + 1) * p)
	lm, _ := math.Lgamma(m + 1)
	lnm, _ := math.Lgamma(n - m + 1)
	h := lm + lnm
	for {
		u := g.r.Float64() - 0.5
		v := g.r.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + c)
		if k < 0 || k > n {
			continue
		}
		if us >= 0.07 && v <= vr {
			return k
		}
		v = math.Log(v * alpha / (a/(us*us) + b))
		lk, _ := math.Lgamma(k + 1)
		lnk, _ := math.Lgamma(n - k + 1)
		if v <= h-lk-lnk+(k-m)*lpq {
			return k
		}
	}
}

// multinomial spreads n draws over bins with probabilities probs (summing
// to 1), adding each bin's count to out, by conditional binomials.
func (g rng) multinomial(n float64, probs []float64, out []float64) {
	rest := 1.0
	for i, p := range probs {
		if n <= 0 {
			return
		}
		if i == len(probs)-1 || p >= rest {
			out[i] += n
			return
		}
		x := g.binomial(n, p/rest)
		out[i] += x
		n -= x
		rest -= p
	}
}

// uniform is a draw from [0, 1).
func (g rng) uniform() float64 { return g.r.Float64() }
