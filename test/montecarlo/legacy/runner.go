package legacy

import (
	"maps"
	"slices"
	"time"
)

// Source is the old MetricSource: each side's traffic over the window
// ending at at, counted by increase().
type Source interface {
	// Inbound returns checkout's inbound traffic; it wraps ErrNoData when
	// a side has no series in the window.
	Inbound(window time.Duration, at time.Time) (Pair, error)
	// Hops returns checkout's calls to each downstream service, keyed by
	// the called service.
	Hops(window time.Duration, at time.Time) (map[string]Pair, error)
}

// Measure builds a tick's measurements as the old Runner's metrics did:
// the window and the fast window widened to span at least two scrapes
// (2.5 for the fast one), error rate and p99 on each over inbound and
// every hop, the fast window for error rates only.
func Measure(src Source, cfg Config, scrape time.Duration, now time.Time) []Measurement {
	window := max(cfg.Window, 2*scrape).Round(time.Second)
	fastWindow := max(cfg.FastWindow, 2*scrape+scrape/2).Round(time.Second)
	var ms []Measurement
	in, err := src.Inbound(window, now)
	ms = append(ms, pairChecks("", in, err, cfg.ErrorRate, cfg.Latency)...)
	fast, ferr := src.Inbound(fastWindow, now)
	ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Pair: fast, Err: ferr, Limit: cfg.ErrorRate, Fast: true})
	if !cfg.Hops {
		return ms
	}
	hops, err := src.Hops(window, now)
	if err != nil {
		return append(ms, pairChecks("checkout → (downstream)", Pair{}, err, cfg.HopErrorRate, cfg.HopLatency)...)
	}
	fastHops, _ := src.Hops(fastWindow, now)
	for _, called := range slices.Sorted(maps.Keys(hops)) {
		hop := "checkout → " + called
		ms = append(ms, pairChecks(hop, hops[called], nil, cfg.HopErrorRate, cfg.HopLatency)...)
		if fp, ok := fastHops[called]; ok {
			ms = append(ms, Measurement{Check: string(KindErrorRate), Kind: KindErrorRate, Hop: hop, Pair: fp, Limit: cfg.HopErrorRate, Fast: true})
		}
	}
	return ms
}

func pairChecks(hop string, p Pair, err error, er, lat Limit) []Measurement {
	return []Measurement{
		{Check: string(KindErrorRate), Kind: KindErrorRate, Hop: hop, Pair: p, Err: err, Limit: er},
		{Check: string(KindLatency), Kind: KindLatency, Hop: hop, Pair: p, Err: err, Limit: lat},
	}
}
