package meshsim

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Errors of fault injection, to check with errors.Is.
var (
	// ErrUnknownWorkload means no workload has the given service and version.
	ErrUnknownWorkload = errors.New("unknown workload")
	// ErrInvalidFault means a Fault field is out of range.
	ErrInvalidFault = errors.New("invalid fault")
)

// Bounds of Fault fields: a stand-in for tests has no use for more, and a
// bound keeps a typo from stalling a test run.
const (
	maxFaultLatencyMs  = 60_000
	maxDownstreamCalls = 20
)

// Fault is what SetFault injects into one workload (one version of one
// service). The zero Fault injects nothing.
type Fault struct {
	// ErrorRate is the probability, in [0,1], that the workload answers an
	// inbound request with HTTP 500 (after its latency, before any
	// downstream call). Each request is drawn at random from the seeded
	// source, independently of the others and of the workload's background
	// error rate (Options.BackgroundErrorRate): a request fails if either
	// draw fails it.
	ErrorRate float64 `json:"errorRate"`
	// LatencyMs is added to the workload's own handling of each inbound
	// request, so it shows in its inbound (reporter="destination") metrics.
	LatencyMs int `json:"latencyMs"`
	// LatencyJitterMs spreads LatencyMs uniformly by ± this much, drawn
	// from the seeded source.
	LatencyJitterMs int `json:"latencyJitterMs"`
	// DownstreamCalls is how many calls the workload makes to each of its
	// downstream services per inbound request; 0 and 1 mean the normal one.
	DownstreamCalls int `json:"downstreamCalls"`
	// DownstreamLatencyMs is added on the downstream hop: the callee takes
	// this much longer to answer this workload's calls.
	DownstreamLatencyMs int `json:"downstreamLatencyMs"`
}

// amplifies reports whether f changes the workload's downstream calls. Such
// calls are made in the background, after the inbound response, so that the
// regression shows on the next hop and not on the workload's own inbound
// latency (see README.md).
func (f Fault) amplifies() bool {
	return f.DownstreamCalls > 1 || f.DownstreamLatencyMs > 0
}

// Validate returns an error wrapping ErrInvalidFault that names the first
// field out of range.
func (f Fault) Validate() error {
	switch {
	case !validRate(f.ErrorRate):
		return fmt.Errorf("%w: errorRate %v is not in [0,1]", ErrInvalidFault, f.ErrorRate)
	case f.LatencyMs < 0 || f.LatencyMs > maxFaultLatencyMs:
		return fmt.Errorf("%w: latencyMs %d is not in [0,%d]", ErrInvalidFault, f.LatencyMs, maxFaultLatencyMs)
	case f.LatencyJitterMs < 0 || f.LatencyJitterMs > maxFaultLatencyMs:
		return fmt.Errorf("%w: latencyJitterMs %d is not in [0,%d]", ErrInvalidFault, f.LatencyJitterMs, maxFaultLatencyMs)
	case f.DownstreamCalls < 0 || f.DownstreamCalls > maxDownstreamCalls:
		return fmt.Errorf("%w: downstreamCalls %d is not in [0,%d]", ErrInvalidFault, f.DownstreamCalls, maxDownstreamCalls)
	case f.DownstreamLatencyMs < 0 || f.DownstreamLatencyMs > maxFaultLatencyMs:
		return fmt.Errorf("%w: downstreamLatencyMs %d is not in [0,%d]", ErrInvalidFault, f.DownstreamLatencyMs, maxFaultLatencyMs)
	}
	return nil
}

// latency draws the added latency of one request from r.
func (f Fault) latency(r *stream) time.Duration {
	ms := float64(f.LatencyMs)
	if f.LatencyJitterMs > 0 {
		ms += (r.float64()*2 - 1) * float64(f.LatencyJitterMs)
	}
	return time.Duration(max(ms, 0) * float64(time.Millisecond))
}

// plus is f with g on top: the error rates fail independently
// (1-(1-a)(1-b)), the latencies and their jitter add, and the larger call
// amplification applies. A workload's template behaviour (g) composes so
// with the fault set through the control API (f).
func (f Fault) plus(g Fault) Fault {
	if g == (Fault{}) {
		return f
	}
	if f == (Fault{}) {
		return g
	}
	return Fault{
		ErrorRate:           1 - (1-f.ErrorRate)*(1-g.ErrorRate),
		LatencyMs:           f.LatencyMs + g.LatencyMs,
		LatencyJitterMs:     f.LatencyJitterMs + g.LatencyJitterMs,
		DownstreamCalls:     max(f.DownstreamCalls, g.DownstreamCalls),
		DownstreamLatencyMs: f.DownstreamLatencyMs + g.DownstreamLatencyMs,
	}
}

// faults is the fault table, keyed "app/version", with the background
// error rates and the error draws of each workload. A fault or a background
// rate of app/version applies to every workload of that app whose version
// label is version: the static one and any Deployment's.
type faults struct {
	cat        *catalog
	background map[string]float64 // app-version → background error rate; immutable
	injected   *streamSet         // workload name → draws against Fault.ErrorRate
	ambient    *streamSet         // workload name → draws against the background rate
	// deployed reports whether a Deployment workload has app and version,
	// so that a fault can be set for a version the catalog lacks; nil
	// means none has.
	deployed func(app, version string) bool
	mu       sync.RWMutex
	m        map[string]Fault
}

// newFaults returns an empty fault table for the workloads of cat, with
// error draws seeded by seed and the background error rates by workload
// name of the catalog, app-version (validated by the caller; nil means
// none).
func newFaults(cat *catalog, seed uint64, background map[string]float64) *faults {
	return &faults{cat: cat, background: background, m: map[string]Fault{},
		injected: newStreamSet(seed, "errors/injected/"), ambient: newStreamSet(seed, "errors/background/")}
}

// set validates f and installs it for service/version; a zero Fault clears.
func (fs *faults) set(service, version string, f Fault) error {
	if err := fs.lookup(service, version); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("fault for %s/%s: %w", service, version, err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f == (Fault{}) {
		delete(fs.m, service+"/"+version)
	} else {
		fs.m[service+"/"+version] = f
	}
	return nil
}

// lookup returns ErrUnknownWorkload unless the catalog or a Deployment has a
// workload of service at version.
func (fs *faults) lookup(service, version string) error {
	_, err := fs.cat.workloadFor(service, version)
	if err != nil && (fs.deployed == nil || !fs.deployed(service, version)) {
		return fmt.Errorf("%w: %w", ErrUnknownWorkload, err)
	}
	return nil
}

// clearAll removes every fault.
func (fs *faults) clearAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	clear(fs.m)
}

// get returns the fault of workload w (the zero Fault if none).
func (fs *faults) get(w *workload) Fault {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.m[w.app+"/"+w.version]
}

// list returns the faults keyed "service/version".
func (fs *faults) list() map[string]Fault {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return maps.Clone(fs.m)
}

// fail decides whether this request to w fails, and says why. The
// injected fault f and w's background rate are drawn independently, each
// from its own stream, so a request fails with probability
// 1-(1-f.ErrorRate)(1-background), and a window of N requests holds a
// binomial number of failures, as real traffic does. Both draws are made
// whenever their rate is above zero, so that one stream never shifts the
// other.
func (fs *faults) fail(w *workload, f Fault) (failed bool, why string) {
	injected := fs.injected.get(w.name()).bernoulli(f.ErrorRate)
	background := fs.ambient.get(w.name()).bernoulli(fs.background[w.app+"-"+w.version])
	switch {
	case injected:
		return true, "injected fault"
	case background:
		return true, "background error"
	}
	return false, ""
}
