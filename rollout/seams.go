package rollout

import (
	"context"
	"errors"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Target names the route a rollout shifts, in plain terms: no Istio types
// cross this seam. Exactly one of the two modes is set: StableSubset and
// CanarySubset (subset mode) or StableHost and CanaryHost (host mode).
type Target struct {
	Namespace      string
	VirtualService string
	// Route is the http route's name; empty means "the single http route
	// whose destinations include both stable and canary".
	Route string
	// Host is the destination host in subset mode; empty means "the host
	// of the route's destinations".
	Host         string
	StableSubset string
	CanarySubset string
	StableHost   string
	CanaryHost   string
}

// HostMode reports whether the target splits by host instead of by subset.
func (t Target) HostMode() bool { return t.StableHost != "" }

// String names the target for messages, e.g. "shop/checkout route primary".
func (t Target) String() string {
	s := t.Namespace + "/" + t.VirtualService
	if t.Route != "" {
		s += " route " + t.Route
	}
	return s
}

// TargetOf returns the target of a Rollout.
func TargetOf(ro *v1alpha1.Rollout) Target {
	if ro.Spec.Workload != nil {
		// serin owns the subsets of a delivered workload, named after the
		// tracks whose pods they select.
		return Target{Namespace: ro.Namespace, VirtualService: ro.Spec.VirtualService, Route: ro.Spec.Route,
			Host: ro.Spec.Host, StableSubset: string(TrackStable), CanarySubset: string(TrackCanary)}
	}
	return Target{
		Namespace:      ro.Namespace,
		VirtualService: ro.Spec.VirtualService,
		Route:          ro.Spec.Route,
		Host:           ro.Spec.Host,
		StableSubset:   ro.Spec.StableSubset,
		CanarySubset:   ro.Spec.CanarySubset,
		StableHost:     ro.Spec.StableHost,
		CanaryHost:     ro.Spec.CanaryHost,
	}
}

// Sentinel errors that a TrafficRouter wraps, so that the engine can act
// on them with errors.Is.
var (
	// ErrNotFound means the VirtualService, the route or a destination of
	// the target does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDrift means the live weights are not what the caller expected.
	ErrDrift = errors.New("weights changed by someone else")
)

// Finding is one result of a preflight check.
type Finding struct {
	// Check names the check: VirtualService, Route, Destinations,
	// DestinationRule, PeerAuthentication or Sidecar.
	Check string
	// Code is the matching Istio analyzer code (IST0101 and so on, see
	// https://istio.io/latest/docs/reference/config/analysis/), when one
	// exists; the Message then starts with it.
	Code string
	// Message says what is wrong, naming the object, in plain words.
	Message string
}

// PreflightReport is the outcome of the mesh checks that run before a
// rollout writes anything. Any failure stops the rollout; warnings are
// recorded as conditions and the rollout goes on.
type PreflightReport struct {
	Failures []Finding
	Warnings []Finding
	// Resolved is the target with Route and Host filled in from the live
	// VirtualService, when the route was found.
	Resolved Target
	// StableVersion and CanaryVersion are the "version" labels of the two
	// subsets in the DestinationRule (subset mode): how metrics and traces
	// tell the two apart.
	StableVersion string
	CanaryVersion string
}

// OK reports whether the preflight found no failure.
func (r PreflightReport) OK() bool { return len(r.Failures) == 0 }

// TrafficRouter shifts traffic on a mesh route. The engine declares it;
// istioadapter implements it on an Istio VirtualService.
type TrafficRouter interface {
	// Preflight checks, without writing anything, that the mesh is ready
	// for a rollout of t. Problems are findings in the report; the error is
	// only for failures to ask (the API server unreachable, say).
	Preflight(ctx context.Context, t Target) (PreflightReport, error)
	// CanaryWeight reads the live canary weight, in percent, of t's route.
	// It wraps ErrNotFound when the route or a destination is missing.
	CanaryWeight(ctx context.Context, t Target) (int32, error)
	// SetCanaryWeight sets the canary weight to w and the stable weight to
	// 100-w on t's route, and changes nothing else. It writes nothing when
	// the weights are already right, retries on write conflicts, and reads
	// back what it wrote. When from is not empty, it writes only if the
	// live canary weight is one of from, atomically with the write, and
	// otherwise wraps ErrDrift: a hand edit is never overwritten.
	SetCanaryWeight(ctx context.Context, t Target, w int32, from ...int32) error
}

// Analyzer judges the canary against stable for one tick.
type Analyzer interface {
	// Analyze runs every check of req and returns the combined verdict.
	// A failure to measure is an Inconclusive result, never a Pass.
	Analyze(ctx context.Context, req analysis.Request) (analysis.Result, error)
}

// Notifier delivers rollout events to people.
type Notifier interface {
	// Notify delivers ev. retry reports whether a failed delivery is worth
	// trying again; it is ignored when err is nil.
	Notify(ctx context.Context, ev Event) (retry bool, err error)
}

// Clock tells the time; tests inject a fake one.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NopNotifier drops every event. It is the placeholder until notification
// channels are configured.
type NopNotifier struct{}

// Notify does nothing and reports success.
func (NopNotifier) Notify(context.Context, Event) (bool, error) { return false, nil }

// DataPlane tells whether the proxies that route a target carry a weight:
// a weight on the VirtualService is only in effect for users once the
// sidecars have it. istioadapter implements it by reading istiod.
type DataPlane interface {
	// Confirm reports which of the connected proxies that route t carry
	// canary weight w and have acknowledged it. The error wraps
	// ErrControlPlaneUnreachable when the control plane cannot be asked;
	// the report is then empty.
	Confirm(ctx context.Context, t Target, w int32) (DataPlaneReport, error)
}

// ErrControlPlaneUnreachable means the mesh's control plane (istiod) does
// not answer, so what the proxies carry is unknown.
var ErrControlPlaneUnreachable = errors.New("control plane unreachable")

// DataPlaneReport is what the proxies that route a target carry.
type DataPlaneReport struct {
	// Proxies is how many connected proxies route the target.
	Proxies int
	// Stragglers name the proxies among them that do not carry the weight
	// or have not acknowledged it, sorted.
	Stragglers []string
	// Lag says why each straggler lags, for people, in the same order
	// ("its routes send 0%", "not acknowledged"); it may be empty.
	Lag []string
}

// Confirmed reports whether every proxy carries the weight.
func (r DataPlaneReport) Confirmed() bool { return len(r.Stragglers) == 0 }
