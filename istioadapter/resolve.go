package istioadapter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	apinet "istio.io/api/networking/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/serin-dev/serin/rollout"
)

// Sentinel errors of route resolution besides rollout.ErrNotFound. Check
// them with errors.Is.
var (
	// ErrAmbiguousRoute means the target names no route and more than one
	// http route has both the stable and the canary destination.
	ErrAmbiguousRoute = errors.New("ambiguous route")
	// ErrForeignDestination means the route sends traffic to a destination
	// that is neither stable nor canary, so serin refuses to manage it.
	ErrForeignDestination = errors.New("route has a destination besides stable and canary")
	// ErrInvalidTarget means the target itself is malformed: both or
	// neither modes set, a half-set mode, or stable equal to canary.
	ErrInvalidTarget = errors.New("invalid target")
	// ErrInvalidWeight means a canary weight outside 0..100 was asked for.
	ErrInvalidWeight = errors.New("invalid weight")
)

// Checks that a resolution error belongs to, as rollout.Finding.Check.
const (
	checkTarget       = "Target"
	checkRoute        = "Route"
	checkDestinations = "Destinations"
)

// resolveError is a resolution failure with a message meant for people,
// the preflight check it belongs to and the sentinel it wraps.
type resolveError struct {
	check string
	msg   string
	kind  error
}

func (e *resolveError) Error() string { return e.msg }
func (e *resolveError) Unwrap() error { return e.kind }

func failf(check string, kind error, format string, args ...any) *resolveError {
	return &resolveError{check: check, msg: fmt.Sprintf(format, args...), kind: kind}
}

// resolved is where a target lives on a VirtualService.
type resolved struct {
	// HTTP is the index of the route in spec.http.
	HTTP int
	// Name is the route's name, or "http[N]" when it has none.
	Name string
	// Host is the destination host: Target.Host, or the host found on the
	// route's stable destination in subset mode, or "" in host mode.
	Host string
	// Stable and Canary index the destinations in the route's route list.
	Stable, Canary int
}

// routeRef names the route at index i for messages and for Target.Route:
// its name, or "http[i]" (zero-based index into spec.http) when unnamed.
func routeRef(r *apinet.HTTPRoute, i int) string {
	if r.GetName() != "" {
		return r.GetName()
	}
	return "http[" + strconv.Itoa(i) + "]"
}

// validateTarget refuses a target whose modes are not set exactly once.
func validateTarget(t rollout.Target) error {
	switch {
	case t.Namespace == "" || t.VirtualService == "":
		return failf(checkTarget, ErrInvalidTarget, "target %q names no namespace or VirtualService", t.String())
	case t.HostMode() && (t.StableSubset != "" || t.CanarySubset != ""):
		return failf(checkTarget, ErrInvalidTarget, "target %s sets both hosts and subsets; choose one mode", t)
	case t.HostMode() && (t.CanaryHost == "" || t.StableHost == t.CanaryHost):
		return failf(checkTarget, ErrInvalidTarget, "target %s: host mode needs two different hosts (stable %q, canary %q)", t, t.StableHost, t.CanaryHost)
	case !t.HostMode() && t.CanaryHost != "":
		return failf(checkTarget, ErrInvalidTarget, "target %s sets a canary host without a stable host", t)
	case !t.HostMode() && (t.StableSubset == "" || t.CanarySubset == "" || t.StableSubset == t.CanarySubset):
		return failf(checkTarget, ErrInvalidTarget, "target %s: subset mode needs two different subsets (stable %q, canary %q)", t, t.StableSubset, t.CanarySubset)
	}
	return nil
}

// matcher decides which destinations are the stable and the canary one.
type matcher struct {
	t    rollout.Target
	ns   string // namespace that short host names resolve in
	host string // subset mode: the host, "" until known
}

func (m matcher) isStable(d *apinet.Destination) bool {
	if m.t.HostMode() {
		return sameHost(d.GetHost(), m.t.StableHost, m.ns)
	}
	return d.GetSubset() == m.t.StableSubset && (m.host == "" || sameHost(d.GetHost(), m.host, m.ns))
}

func (m matcher) isCanary(d *apinet.Destination) bool {
	if m.t.HostMode() {
		return sameHost(d.GetHost(), m.t.CanaryHost, m.ns)
	}
	return d.GetSubset() == m.t.CanarySubset && (m.host == "" || sameHost(d.GetHost(), m.host, m.ns))
}

// forRoute fixes the host in subset mode when the target leaves it empty:
// it is the host of the route's first stable destination.
func (m matcher) forRoute(r *apinet.HTTPRoute) matcher {
	if m.t.HostMode() || m.host != "" {
		return m
	}
	for _, rd := range r.GetRoute() {
		if m.isStable(rd.GetDestination()) {
			m.host = rd.GetDestination().GetHost()
			return m
		}
	}
	return m
}

// hasBoth reports whether route r has both a stable and a canary destination.
func (m matcher) hasBoth(r *apinet.HTTPRoute) bool {
	m = m.forRoute(r)
	var s, c bool
	for _, rd := range r.GetRoute() {
		s = s || m.isStable(rd.GetDestination())
		c = c || m.isCanary(rd.GetDestination())
	}
	return s && c
}

// stableName and canaryName describe the wanted destinations in messages.
func (m matcher) stableName() string {
	if m.t.HostMode() {
		return "host " + strconv.Quote(m.t.StableHost)
	}
	return subsetName(m.host, m.t.StableSubset)
}

func (m matcher) canaryName() string {
	if m.t.HostMode() {
		return "host " + strconv.Quote(m.t.CanaryHost)
	}
	return subsetName(m.host, m.t.CanarySubset)
}

func subsetName(host, subset string) string {
	if host == "" {
		return "subset " + strconv.Quote(subset)
	}
	return strconv.Quote(host) + " subset " + strconv.Quote(subset)
}

// resolveRoute finds the target's route on vs and its stable and canary
// destinations. It is pure. Errors are *resolveError values that wrap
// rollout.ErrNotFound, ErrAmbiguousRoute, ErrForeignDestination or
// ErrInvalidTarget.
func resolveRoute(vs *netv1.VirtualService, t rollout.Target) (resolved, error) {
	if err := validateTarget(t); err != nil {
		return resolved{}, err
	}
	m := matcher{t: t, ns: vs.Namespace, host: t.Host}
	idx, err := findRoute(vs, m)
	if err != nil {
		return resolved{}, err
	}
	r := vs.Spec.GetHttp()[idx]
	m = m.forRoute(r)
	res := resolved{HTTP: idx, Name: routeRef(r, idx), Host: m.host, Stable: -1, Canary: -1}
	err = pickDestinations(&res, r, m, fmt.Sprintf("VirtualService %s/%s route %q", vs.Namespace, vs.Name, res.Name))
	return res, err
}

// pickDestinations fills res.Stable and res.Canary from route r, refusing
// a route with any other destination or with stable or canary twice.
func pickDestinations(res *resolved, r *apinet.HTTPRoute, m matcher, where string) error {
	for j, rd := range r.GetRoute() {
		d := rd.GetDestination()
		switch {
		case m.isStable(d) && res.Stable < 0:
			res.Stable = j
		case m.isCanary(d) && res.Canary < 0:
			res.Canary = j
		case m.isStable(d) || m.isCanary(d):
			return failf(checkDestinations, ErrForeignDestination,
				"%s lists destination %s twice; serin manages only routes split between one stable and one canary destination",
				where, describeDest(d))
		default:
			return failf(checkDestinations, ErrForeignDestination,
				"%s also sends traffic to %s, which is neither stable (%s) nor canary (%s); serin manages only routes split between stable and canary",
				where, describeDest(d), m.stableName(), m.canaryName())
		}
	}
	if res.Stable >= 0 && res.Canary >= 0 {
		return nil
	}
	missing, role := m.canaryName(), "canary"
	if res.Stable < 0 {
		missing, role = m.stableName(), "stable"
	}
	return failf(checkDestinations, rollout.ErrNotFound, "%s has no %s destination %s (destinations: %s)",
		where, role, missing, describeDests(r))
}

// findRoute returns the index in spec.http of the target's route.
func findRoute(vs *netv1.VirtualService, m matcher) (int, error) {
	routes := vs.Spec.GetHttp()
	if name := m.t.Route; name != "" {
		for i, r := range routes {
			if r.GetName() == name {
				return i, nil
			}
		}
		// An unnamed route may be referred to as http[N], the name that
		// Preflight reports for it.
		for i, r := range routes {
			if r.GetName() == "" && routeRef(r, i) == name {
				return i, nil
			}
		}
		return -1, failf(checkRoute, rollout.ErrNotFound, "VirtualService %s/%s has no http route named %q (routes: %s)",
			vs.Namespace, vs.Name, name, listRoutes(vs, nil))
	}
	var found []int
	for i, r := range routes {
		if m.hasBoth(r) {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return -1, failf(checkRoute, rollout.ErrNotFound,
			"VirtualService %s/%s has no http route with both the stable (%s) and the canary (%s) destination (routes: %s)",
			vs.Namespace, vs.Name, m.stableName(), m.canaryName(), listRoutes(vs, nil))
	default:
		return -1, failf(checkRoute, ErrAmbiguousRoute,
			"VirtualService %s/%s has %d http routes with both the stable (%s) and the canary (%s) destination (%s); name one in the rollout's route",
			vs.Namespace, vs.Name, len(found), m.stableName(), m.canaryName(), listRoutes(vs, found))
	}
}

// listRoutes describes the http routes at idx (all when idx is nil) with
// their destinations, e.g. `"main" -> checkout/stable, checkout/canary`.
func listRoutes(vs *netv1.VirtualService, idx []int) string {
	routes := vs.Spec.GetHttp()
	if idx == nil {
		for i := range routes {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(idx))
	for _, i := range idx {
		parts = append(parts, strconv.Quote(routeRef(routes[i], i))+" -> "+describeDests(routes[i]))
	}
	return strings.Join(parts, "; ")
}

func describeDests(r *apinet.HTTPRoute) string {
	if len(r.GetRoute()) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(r.GetRoute()))
	for _, rd := range r.GetRoute() {
		parts = append(parts, describeDest(rd.GetDestination()))
	}
	return strings.Join(parts, ", ")
}

func describeDest(d *apinet.Destination) string {
	if d.GetSubset() == "" {
		return d.GetHost()
	}
	return d.GetHost() + "/" + d.GetSubset()
}

// weightOf returns the weight of destination j of route r as Istio reads
// it: a missing weight is 0, except that a route's only destination gets
// all the traffic.
func weightOf(r *apinet.HTTPRoute, j int) int32 {
	if len(r.GetRoute()) == 1 && r.GetRoute()[0].GetWeight() == 0 {
		return 100
	}
	return r.GetRoute()[j].GetWeight()
}

// clusterDomain is the Kubernetes cluster domain that short host names are
// completed with. Istio assumes the same default.
const clusterDomain = "cluster.local"

// sameHost reports whether two destination hosts name the same service,
// short names resolving in namespace ns as Kubernetes DNS resolves them:
// "checkout", "checkout.shop", "checkout.shop.svc" and
// "checkout.shop.svc.cluster.local" are all the same service for ns "shop".
// Comparison ignores case and a trailing dot.
func sameHost(a, b, ns string) bool {
	return a != "" && b != "" && canonicalHost(a, ns) == canonicalHost(b, ns)
}

// canonicalHost completes a Kubernetes service name to its FQDN. Names
// with more labels, such as external hosts, are returned as they are.
func canonicalHost(h, ns string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	labels := strings.Split(h, ".")
	switch {
	case h == "*" || strings.HasPrefix(h, "*"):
		return h
	case len(labels) == 1:
		return h + "." + ns + ".svc." + clusterDomain
	case len(labels) == 2:
		return h + ".svc." + clusterDomain
	case len(labels) == 3 && labels[2] == "svc":
		return h + "." + clusterDomain
	}
	return h
}
