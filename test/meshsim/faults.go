package meshsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
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
	// ErrorRate is the fraction, in [0,1], of inbound requests the workload
	// answers with HTTP 500 (after its latency, before any downstream call).
	ErrorRate float64 `json:"errorRate"`
	// LatencyMs is added to the workload's own handling of each inbound
	// request, so it shows in its inbound (reporter="destination") metrics.
	LatencyMs int `json:"latencyMs"`
	// LatencyJitterMs spreads LatencyMs uniformly by ± this much.
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
	case f.ErrorRate < 0 || f.ErrorRate > 1 || f.ErrorRate != f.ErrorRate:
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

// latency draws the added latency of one request.
func (f Fault) latency() time.Duration {
	ms := float64(f.LatencyMs)
	if f.LatencyJitterMs > 0 {
		ms += (rand.Float64()*2 - 1) * float64(f.LatencyJitterMs)
	}
	return time.Duration(max(ms, 0) * float64(time.Millisecond))
}

// faults is the fault table, keyed by workload name.
type faults struct {
	cat  *catalog
	pick *picker // errors follow the same low-discrepancy sequence as routing
	mu   sync.RWMutex
	m    map[string]Fault
}

// newFaults returns an empty fault table for the workloads of cat.
func newFaults(cat *catalog, pick *picker) *faults {
	return &faults{cat: cat, pick: pick, m: map[string]Fault{}}
}

// set validates f and installs it for service/version; a zero Fault clears.
func (fs *faults) set(service, version string, f Fault) error {
	w, err := fs.lookup(service, version)
	if err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("fault for %s: %w", w.name(), err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f == (Fault{}) {
		delete(fs.m, w.name())
	} else {
		fs.m[w.name()] = f
	}
	return nil
}

// lookup returns the workload of service/version or ErrUnknownWorkload.
func (fs *faults) lookup(service, version string) (*workload, error) {
	if _, err := fs.cat.workloadFor(service, version); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownWorkload, err)
	}
	return fs.cat.workloads[service+"-"+version], nil
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
	return fs.m[w.name()]
}

// list returns the faults keyed "service/version".
func (fs *faults) list() map[string]Fault {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	out := make(map[string]Fault, len(fs.m))
	for name, f := range fs.m {
		w := fs.cat.workloads[name]
		out[w.app+"/"+w.version] = f
	}
	return out
}

// fail decides whether this request to w fails under f. The decisions
// follow a low-discrepancy sequence per workload, so the error rate over
// any window of N requests is within about log(N)/N of f.ErrorRate.
func (fs *faults) fail(w *workload, f Fault) bool {
	if f.ErrorRate <= 0 {
		return false
	}
	return fs.pick.next("fault/"+w.name()) < f.ErrorRate
}
