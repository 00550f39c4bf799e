package istioadapter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/serin-dev/serin/rollout"
)

// DataPlane implements rollout.DataPlane by reading istiod's debug API: it
// tells whether the proxies that route a VirtualService carry a weight and
// have acknowledged it. A poller (Start) reads /debug/syncz every
// PollInterval, and a proxy's config dump whenever istiod has sent it new
// routes, so Confirm is a lookup in memory: a thousand rollouts asking on
// every tick cost istiod nothing more.
//
// A proxy carries weight w for a target once both hold:
//   - the routes istiod last pushed to it, built from the target's
//     VirtualService (Istio marks each Envoy route with the config it came
//     from), send w% to the canary's clusters;
//   - it has acknowledged a route push at least as new as those routes:
//     the counter of its acknowledged RDS nonce is at least that of the
//     dump's push version. istiod computes each push from the
//     configuration it holds then, and numbers them in order.
//
// A push that changed only endpoints moves the dump's version past the
// last route push without new routes; then a proxy whose acknowledged
// routes are the latest sent, unchanged for settle after the dump was
// read, carries them too.
type DataPlane struct {
	c      *istiodClient
	poll   time.Duration
	settle time.Duration
	stale  time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu      sync.RWMutex
	ready   chan struct{} // closed after the first poll, good or bad
	proxies map[string]*proxyState
	okAt    time.Time // the last poll that istiod answered
	lastErr error

	// lagging holds the proxies that Confirm found lagging since the last
	// poll. The poller reads their dumps again every redump even when
	// istiod has sent them nothing new, so that a dump read in a race
	// with a push, or one istiod answered from an older state, cannot
	// hold a rollout for good: a held rollout writes nothing, so nothing
	// new would be pushed to correct it.
	lagMu   sync.Mutex
	lagging map[string]bool
	redump  time.Duration
}

// proxyState is what the poller knows of one connected proxy.
type proxyState struct {
	routeSent, routeAcked string
	// dumpFor is the RDS nonce sent when the dump was read, dumpAt when.
	dumpFor string
	dumpAt  time.Time
	routes  proxyRoutes
	dumped  bool
}

// DataPlaneOptions configure a DataPlane.
type DataPlaneOptions struct {
	// URL is istiod's debug API, e.g. http://istiod.istio-system:15014.
	URL string
	// TokenFile holds a bearer token for istiod: a projected
	// service-account token with the audience istio-ca. istiod serves its
	// debug API without one only to callers on its own host, and to
	// others from istio-system or a namespace in its
	// DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES. "" sends none.
	TokenFile string
	// Client makes the requests; nil is a client with a 2 s timeout.
	Client *http.Client
	// PollInterval is how often /debug/syncz is read; default 100 ms.
	PollInterval time.Duration
	// Log receives poll failures; nil discards.
	Log *slog.Logger
}

// NewDataPlane checks the options and returns a DataPlane; Start runs its
// poller.
func NewDataPlane(o DataPlaneOptions) (*DataPlane, error) {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 2 * time.Second}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c, err := newIstiodClient(o.URL, o.TokenFile, o.Client)
	if err != nil {
		return nil, err
	}
	return &DataPlane{c: c, poll: o.PollInterval, settle: 500 * time.Millisecond, stale: 2 * time.Second,
		redump: time.Second, log: o.Log, now: time.Now, ready: make(chan struct{}),
		proxies: map[string]*proxyState{}, lagging: map[string]bool{}}, nil
}

// Start polls istiod until ctx ends. It satisfies controller-runtime's
// Runnable; NeedLeaderElection keeps it to the leader, the one replica
// that confirms.
func (d *DataPlane) Start(ctx context.Context) error {
	t := time.NewTicker(d.poll)
	defer t.Stop()
	first := true
	for {
		d.pollOnce(ctx)
		if first {
			close(d.ready)
			first = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection reports that only the leader polls istiod.
func (d *DataPlane) NeedLeaderElection() bool { return true }

// pollOnce reads /debug/syncz, then the config dump of every proxy that
// was sent routes since its dump was read, and again that of a proxy found
// lagging whose dump is older than redump.
func (d *DataPlane) pollOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(d.poll*10, 2*time.Second))
	defer cancel()
	ss, err := d.c.syncz(ctx)
	if err != nil {
		d.mu.Lock()
		if d.lastErr == nil {
			d.log.Warn("istiod's debug API does not answer; the proxies' routes are unknown", "err", err)
		}
		d.lastErr = err
		d.mu.Unlock()
		return
	}
	d.mu.RLock()
	known := d.proxies
	d.mu.RUnlock()
	d.lagMu.Lock()
	lagging := d.lagging
	d.lagging = map[string]bool{}
	d.lagMu.Unlock()
	next := make(map[string]*proxyState, len(ss))
	for _, s := range ss {
		if s.ProxyType != "" && s.ProxyType != "sidecar" {
			continue // gateways and waypoints route by other configuration
		}
		p := &proxyState{}
		if old, ok := known[s.ProxyID]; ok {
			*p = *old
		}
		p.routeSent, p.routeAcked = s.RouteSent, s.RouteAcked
		if !p.dumped || p.dumpFor != s.RouteSent || lagging[s.ProxyID] && d.now().Sub(p.dumpAt) >= d.redump {
			if r, err := d.c.configDump(ctx, s.ProxyID); err == nil {
				p.routes, p.dumpFor, p.dumpAt, p.dumped = r, s.RouteSent, d.now(), true
			} else {
				d.log.Debug("read a proxy's config dump", "proxy", s.ProxyID, "err", err)
			}
		}
		next[s.ProxyID] = p
	}
	d.mu.Lock()
	d.proxies, d.okAt = next, d.now()
	if d.lastErr != nil {
		d.log.Info("istiod's debug API answers again", "proxies", len(next))
	}
	d.lastErr = nil
	d.mu.Unlock()
}

// Confirm reports which connected proxies that route t's VirtualService
// do not carry canary weight w yet. It waits for the poller's first read.
func (d *DataPlane) Confirm(ctx context.Context, t rollout.Target, w int32) (rollout.DataPlaneReport, error) {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return rollout.DataPlaneReport{}, ctx.Err()
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.lastErr != nil && d.now().Sub(d.okAt) > d.stale {
		return rollout.DataPlaneReport{}, fmt.Errorf("%w: istiod %s: %v", rollout.ErrControlPlaneUnreachable, d.c.base.Redacted(), d.lastErr)
	}
	vs := t.Namespace + "/" + t.VirtualService
	var rep rollout.DataPlaneReport
	var lag []string
	for id, p := range d.proxies {
		routes, ok := p.routes.byVS[vs]
		if !ok && p.dumped {
			continue // this proxy does not route the service
		}
		rep.Proxies++
		if ok, why, stale := d.carries(p, routes, t, w); !ok {
			rep.Stragglers = append(rep.Stragglers, id)
			rep.Lag = append(rep.Lag, why)
			if stale {
				lag = append(lag, id)
			}
		}
	}
	sortLag(&rep)
	if len(lag) > 0 {
		d.lagMu.Lock()
		for _, id := range lag {
			d.lagging[id] = true
		}
		d.lagMu.Unlock()
	}
	return rep, nil
}

// sortLag sorts a report's stragglers by name, with their reasons.
func sortLag(rep *rollout.DataPlaneReport) {
	idx := make([]int, len(rep.Stragglers))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(rep.Stragglers[a], rep.Stragglers[b]) })
	ids, why := make([]string, len(idx)), make([]string, len(idx))
	for i, j := range idx {
		ids[i], why[i] = rep.Stragglers[j], rep.Lag[j]
	}
	rep.Stragglers, rep.Lag = ids, why
}

// carries reports whether proxy p routes w% of t's traffic to the canary
// and has acknowledged it, and when not, why, for people: what its routes
// send to the canary, and whether it has acknowledged them. reread says
// that its dump shows other routes: only a newer dump can change that,
// while the acknowledgement comes from syncz and settling from time.
func (d *DataPlane) carries(p *proxyState, routes []vsRoute, t rollout.Target, w int32) (ok bool, why string, reread bool) {
	if !p.dumped {
		return false, "its routes not read yet", false
	}
	r, found := targetRoute(routes, t)
	if !found {
		return false, "no route of the VirtualService", true
	}
	if share := canaryShare(r, t); share != w {
		if share < 0 {
			return false, "its route sends no weight", true
		}
		return false, fmt.Sprintf("its routes send %d%%", share), true
	}
	if acked := pushCounter(p.routeAcked); acked >= 0 && acked >= pushCounter(p.routes.version) {
		return true, "", false
	}
	if p.routeAcked == p.routeSent && p.routeSent == p.dumpFor && d.now().Sub(p.dumpAt) >= d.settle {
		return true, "", false
	}
	if p.routeAcked != p.routeSent {
		return false, "not acknowledged", false
	}
	return false, "settling", false
}

// targetRoute picks the rollout's route among a VirtualService's routes on
// a proxy: the one named t.Route, else the one that sends to stable, else
// the last (the catch-all, as Istio orders them).
func targetRoute(routes []vsRoute, t rollout.Target) (vsRoute, bool) {
	var named, toStable []vsRoute
	for _, r := range routes {
		// Istio names an Envoy route after the http route, with the
		// match's name appended when it has one ("primary.canary-header").
		if t.Route != "" && (r.name == t.Route || strings.HasPrefix(r.name, t.Route+".")) {
			named = append(named, r)
		}
		for _, c := range r.clusters {
			if side(c.cluster, t) == sideStable {
				toStable = append(toStable, r)
				break
			}
		}
	}
	switch {
	case len(named) > 0:
		return named[0], true
	case t.Route != "":
		return vsRoute{}, false
	case len(toStable) > 0:
		return toStable[len(toStable)-1], true
	case len(routes) > 0:
		return routes[len(routes)-1], true
	}
	return vsRoute{}, false
}

// canaryShare is the percentage of r's weight on the canary's clusters.
func canaryShare(r vsRoute, t rollout.Target) int32 {
	var canary, total uint64
	for _, c := range r.clusters {
		total += uint64(c.weight)
		if side(c.cluster, t) == sideCanary {
			canary += uint64(c.weight)
		}
	}
	if total == 0 {
		return -1
	}
	return int32((canary*100 + total/2) / total)
}

type trackSide int

const (
	sideOther trackSide = iota
	sideStable
	sideCanary
)

// side tells which side of t an Envoy cluster name
// (outbound|PORT|SUBSET|FQDN) is: by subset in subset mode, by host in
// host mode.
func side(cluster string, t rollout.Target) trackSide {
	parts := strings.Split(cluster, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return sideOther
	}
	subset, host := parts[2], parts[3]
	if t.HostMode() {
		switch {
		case sameHost(host, t.CanaryHost, t.Namespace):
			return sideCanary
		case sameHost(host, t.StableHost, t.Namespace):
			return sideStable
		}
		return sideOther
	}
	if t.Host != "" && !sameHost(host, t.Host, t.Namespace) {
		return sideOther
	}
	switch subset {
	case t.CanarySubset:
		return sideCanary
	case t.StableSubset:
		return sideStable
	}
	return sideOther
}
