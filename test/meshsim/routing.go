package meshsim

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Routing failures, as Envoy would report them.
var (
	// errNoRoute means a VirtualService matched the host but none of its
	// http routes matched the request: Envoy answers 404 with flag NR.
	errNoRoute = errors.New("no route matched")
	// errNoCluster means the chosen destination does not exist (unknown host
	// or subset, or no endpoints): Envoy answers 503 with flag NC.
	errNoCluster = errors.New("no cluster for destination")
	// errNoHealthy means the destination's workloads have no ready pod:
	// Envoy answers 503 with flag UH ("no healthy upstream").
	errNoHealthy = errors.New("no healthy upstream")
)

// strMatch is Istio's StringMatch: exact, prefix or (RE2, anchored) regex.
// A strMatch with none of them set only asks for presence.
type strMatch struct {
	exact  *string
	prefix *string
	re     *regexp.Regexp
}

// matches reports whether s, which is present, satisfies m.
func (m strMatch) matches(s string) bool {
	switch {
	case m.exact != nil:
		return s == *m.exact
	case m.prefix != nil:
		return strings.HasPrefix(s, *m.prefix)
	case m.re != nil:
		return m.re.MatchString(s)
	default:
		return true
	}
}

// matchCond is one HTTPMatchRequest: all of its set conditions must hold.
type matchCond struct {
	uri            *strMatch
	ignoreURICase  bool
	method         *strMatch
	authority      *strMatch
	scheme         *strMatch
	headers        map[string]strMatch // lower-case names
	withoutHeaders map[string]strMatch // lower-case names
	queryParams    map[string]strMatch
	sourceLabels   map[string]string
	sourceNS       string
	port           uint32
	notForMesh     bool // its gateways list leaves out "mesh"
}

// destination is one weighted HTTPRouteDestination, or one weighted
// cluster of a route from istiod (cluster set).
type destination struct {
	host    string // FQDN
	subset  string
	weight  int32
	cluster string // the Envoy cluster, from istiod; "" from a VirtualService
}

// httpRoute is one HTTPRoute: it applies when any of match holds, or always
// when match is empty.
type httpRoute struct {
	name  string
	match []matchCond
	dests []destination
}

// vsRoutes is the part of one VirtualService that a sidecar uses.
type vsRoutes struct {
	namespace, name string
	hosts           []string // FQDN patterns
	http            []httpRoute
}

// routeTable is an immutable snapshot of the routing configuration: the
// VirtualServices in precedence order (oldest first) and the
// DestinationRule subsets by FQDN host and subset name.
type routeTable struct {
	vss     []vsRoutes
	subsets map[string]map[string]map[string]string
}

// request is one outbound call as the caller's sidecar sees it.
type request struct {
	host   string // FQDN of the called Service
	path   string
	method string
	query  url.Values
	header http.Header
	source *workload // nil for traffic from outside the mesh
}

// target is the outcome of routing: the Service host the request was routed
// to (destination_service) and the workload that serves it.
type target struct {
	fqdn   string
	subset string
	host   hostInfo
	wl     *workload
	// unready names the selected workloads when none has a ready pod
	// (with errNoHealthy), for meshsim_unready_requests_total.
	unready []string
}

// findVS returns the VirtualService for host: an exact host match wins over
// a wildcard; among equals the oldest wins.
func (t *routeTable) findVS(host string) *vsRoutes {
	var wildcard *vsRoutes
	for i := range t.vss {
		for _, p := range t.vss[i].hosts {
			if p == host {
				return &t.vss[i]
			}
			if wildcard == nil && hostMatches(p, host) {
				wildcard = &t.vss[i]
			}
		}
	}
	return wildcard
}

// firstRoute returns the index of the first http route that matches r, or -1.
func (vs *vsRoutes) firstRoute(r *request) int {
	for i, rt := range vs.http {
		if len(rt.match) == 0 {
			return i
		}
		for _, m := range rt.match {
			if m.matches(r) {
				return i
			}
		}
	}
	return -1
}

// matches reports whether every condition set in m holds for r.
func (m *matchCond) matches(r *request) bool {
	if m.notForMesh || (m.port != 0 && m.port != 80) {
		return false
	}
	if m.sourceNS != "" && (r.source == nil || r.source.namespace != m.sourceNS) {
		return false
	}
	if !labelsMatch(m.sourceLabels, r.source) {
		return false
	}
	path := r.path
	if m.ignoreURICase {
		path = strings.ToLower(path)
	}
	if !optMatch(m.uri, path) || !optMatch(m.method, r.method) ||
		!optMatch(m.authority, r.host) || !optMatch(m.scheme, "http") {
		return false
	}
	for name, sm := range m.headers {
		v, ok := r.header[http.CanonicalHeaderKey(name)]
		if !ok || !sm.matches(v[0]) {
			return false
		}
	}
	for name, sm := range m.withoutHeaders {
		if v, ok := r.header[http.CanonicalHeaderKey(name)]; ok && sm.matches(v[0]) {
			return false
		}
	}
	for name, sm := range m.queryParams {
		if !r.query.Has(name) || !sm.matches(r.query.Get(name)) {
			return false
		}
	}
	return true
}

// optMatch is true when m is unset or s satisfies it.
func optMatch(m *strMatch, s string) bool { return m == nil || m.matches(s) }

// labelsMatch reports whether the source workload has every wanted label.
func labelsMatch(want map[string]string, src *workload) bool {
	if len(want) == 0 {
		return true
	}
	if src == nil {
		return false
	}
	return labelsInclude(src.labels(), want)
}

// labelsInclude reports whether have holds every label of want, as a
// Kubernetes equality selector does.
func labelsInclude(have, want map[string]string) bool {
	for k, v := range want {
		if x, ok := have[k]; !ok || x != v {
			return false
		}
	}
	return true
}

// router resolves outbound requests against the current routeTable, which
// the watcher swaps atomically, and the current Deployment workloads, which
// the kubelet stand-in swaps likewise, so that an update applies to the very
// next request.
type router struct {
	cat   *catalog
	table atomic.Pointer[routeTable]
	topo  atomic.Pointer[topology]
	pick  *picker
	lb    *stream // picks among ready endpoints (Deployment workloads)
	// xds, when set (Options.XDSAddr), routes each call by the caller's
	// sidecar's configuration from istiod instead of the table; lookup
	// finds a workload by key for the endpoints it picks. Both are set
	// before anything is served.
	xds    *proxySet
	lookup func(key string) *workload
}

// newRouter returns a router with an empty table and no Deployment
// workloads: every host goes to its default version until a table is set.
// Its endpoint picks are seeded with 0 until Start sets lb.
func newRouter(cat *catalog, pick *picker) *router {
	r := &router{cat: cat, pick: pick, lb: newStream(0, "endpoints")}
	r.table.Store(&routeTable{})
	r.topo.Store(&topology{})
	return r
}

// resolve routes r like a sidecar: VirtualService, first matching http
// route, weighted destination, DestinationRule subset → version label; in
// xDS mode by the caller's sidecar's routes from istiod (resolveXDS).
func (rt *router) resolve(r *request) (target, error) {
	if rt.xds != nil {
		if r.source == nil { // no sidecar: the Service's own endpoints, as kube-proxy would
			return rt.targetFor(r.host, "", nil)
		}
		return rt.resolveXDS(r)
	}
	tbl := rt.table.Load()
	vs := tbl.findVS(r.host)
	if vs == nil {
		return rt.targetFor(r.host, "", nil)
	}
	i := vs.firstRoute(r)
	if i < 0 {
		return target{}, fmt.Errorf("%w: VirtualService %s/%s has no http route for %s %s%s",
			errNoRoute, vs.namespace, vs.name, r.method, r.host, r.path)
	}
	route := vs.http[i]
	if len(route.dests) == 0 {
		return target{}, fmt.Errorf("%w: VirtualService %s/%s route %d has no destination (redirects and direct responses are not simulated)",
			errNoCluster, vs.namespace, vs.name, i)
	}
	key := vs.namespace + "/" + vs.name + "/" + strconv.Itoa(i)
	d := route.dests[rt.pick.pick(key, route.dests)]
	return rt.targetFor(d.host, d.subset, tbl.subsets[d.host])
}

// targetFor returns the workload that serves host (FQDN), narrowed by
// subset through that host's DestinationRule subsets: the host's Service
// selects its app (and version, for a per-version Service), the subset's
// labels select among the app's pods. An app with Deployments is served by
// them alone (see topology.pick); otherwise the static catalog serves it.
func (rt *router) targetFor(host, subset string, subsets map[string]map[string]string) (target, error) {
	h, ok := rt.cat.hosts[host]
	if !ok {
		return target{}, fmt.Errorf("%w: unknown host %q", errNoCluster, host)
	}
	sel := map[string]string{"app": h.app}
	if h.version != "" {
		sel["version"] = h.version
	}
	if subset != "" {
		labels, ok := subsets[subset]
		if !ok {
			return target{}, fmt.Errorf("%w: no DestinationRule subset %q for host %s", errNoCluster, subset, host)
		}
		for k, v := range labels {
			if have, set := sel[k]; set && have != v { // the Service selects none of them
				return target{}, fmt.Errorf("%w: host %s subset %q selects %s=%s, which has no endpoints",
					errNoCluster, host, subset, k, v)
			}
			sel[k] = v
		}
	}
	tgt := target{fqdn: host, subset: subset, host: h}
	if ws := rt.topo.Load().byApp[h.app]; len(ws) > 0 {
		w, unready, err := pickReady(ws, sel, rt.lb.float64)
		if err != nil {
			tgt.unready = unready
			return tgt, fmt.Errorf("%w: host %s subset %q: %w", errNoHealthy, host, subset, err)
		}
		tgt.wl = w
		return tgt, nil
	}
	w, err := rt.cat.staticTarget(h, sel)
	if err != nil {
		return target{}, fmt.Errorf("%w: host %s subset %q: %w", errNoCluster, host, subset, err)
	}
	tgt.wl = w
	return tgt, nil
}

// staticTarget returns the catalog workload of h's app whose labels
// include sel. When several do (no subset, or a subset without a version),
// it is the app's default version, as before Deployments were simulated.
func (c *catalog) staticTarget(h hostInfo, sel map[string]string) (*workload, error) {
	var match []*workload
	for _, v := range c.services[h.app].versions {
		w := c.workloads[h.app+"-"+v]
		if labelsInclude(w.labels(), sel) {
			match = append(match, w)
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("labels %v select no workload in namespace %s (have %s)",
			sel, c.namespace, strings.Join(c.workloadNames(), ", "))
	case len(match) == 1:
		return match[0], nil
	}
	if w := c.workloads[h.app+"-"+c.defaultVersion(h)]; slices.Contains(match, w) {
		return w, nil
	}
	return match[0], nil
}

// phi is the fractional part of the golden ratio.
var phi = (math.Sqrt(5) - 1) / 2

// picker chooses weighted destinations quasi-randomly: the n-th pick on a
// route uses frac(seed + n·φ), a low-discrepancy sequence. Successive picks
// interleave like random ones, but the split over any window of N requests
// is within about log(N)/N of the weights, so tests of a 2,000-request split
// are not at the mercy of sampling noise. Envoy picks at random; over many
// requests the split is the same. Only routing uses it: errors and
// latencies are drawn at random from seeded streams (random.go), so that
// they show the variance of real traffic.
type picker struct {
	seed     float64
	counters sync.Map // key → *atomic.Uint64
}

// newPicker returns a picker whose sequences start at seed (in [0,1)).
func newPicker(seed float64) *picker { return &picker{seed: seed} }

// next returns the next point in [0,1) of key's sequence.
func (p *picker) next(key string) float64 {
	c, _ := p.counters.LoadOrStore(key, new(atomic.Uint64))
	n := c.(*atomic.Uint64).Add(1)
	_, f := math.Modf(p.seed + float64(n)*phi)
	return f
}

// pick returns the index of the destination to use. Weights below zero
// count as zero; when all are zero the first destination is used, which
// matches Istio's reading of a single destination without weight as 100.
func (p *picker) pick(key string, dests []destination) int {
	return weightedIndex(p.next(key), dests)
}

// weightedIndex maps u in [0,1) onto dests by weight.
func weightedIndex(u float64, dests []destination) int {
	var total int64
	for _, d := range dests {
		total += int64(max(d.weight, 0))
	}
	if total == 0 {
		return 0
	}
	x := u * float64(total)
	var acc float64
	last := 0
	for i, d := range dests {
		if d.weight <= 0 {
			continue
		}
		acc += float64(d.weight)
		last = i
		if x < acc {
			return i
		}
	}
	return last
}
