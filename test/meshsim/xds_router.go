package meshsim

import (
	"fmt"
	"strings"
)

// Routing by what istiod sent (xDS mode): the caller's own sidecar routes
// each of its outbound calls by its accepted RouteConfiguration, picks a
// weighted cluster, and balances over that cluster's endpoints from EDS,
// whose Pod IPs name the workloads that serve.

// servicePort is the port every simulated call goes to (stack.ServicePort),
// which picks the outbound listener and so the route configuration.
const servicePort = 80

// resolveXDS routes r as the calling workload's sidecar does with its
// configuration from istiod.
func (rt *router) resolveXDS(r *request) (target, error) {
	cfg, id := rt.xds.config(r.source.name())
	if cfg == nil {
		if id == "" {
			return target{}, fmt.Errorf("%w: workload %s has no sidecar connected to istiod (no Pod with an IP)", errNoCluster, r.source.name())
		}
		return target{}, fmt.Errorf("%w: sidecar %s has no configuration from istiod yet", errNoCluster, id)
	}
	name, ok := cfg.portRoute[servicePort]
	routes := cfg.routes[name]
	if !ok || routes == nil {
		return target{}, fmt.Errorf("%w: sidecar %s has no route configuration for port %d", errNoRoute, id, servicePort)
	}
	vh := routes.findVHost(r.host)
	if vh == nil {
		return target{}, fmt.Errorf("%w: route configuration %q of sidecar %s has no virtual host for %s (has %s)",
			errNoRoute, name, id, r.host, strings.Join(routes.hosts(), ", "))
	}
	i := vh.firstRoute(r)
	if i < 0 {
		return target{}, fmt.Errorf("%w: virtual host %s has no route for %s %s%s", errNoRoute, vh.name, r.method, r.host, r.path)
	}
	route := vh.routes[i]
	if len(route.dests) == 0 {
		return target{}, fmt.Errorf("%w: virtual host %s route %d is a %s, which is not simulated", errNoCluster, vh.name, i, route.action)
	}
	key := "xds/" + r.source.name() + "/" + vh.name + "/" + fmt.Sprint(i)
	return rt.targetForCluster(cfg, route.dests[rt.pick.pick(key, route.dests)])
}

// targetForCluster picks a healthy endpoint of d's cluster, in proportion
// to the endpoints' weights, and returns the workload whose Pod has its IP.
// A cluster that CDS did not send answers NC, as Envoy's "cluster not
// found"; one with no healthy endpoint of a simulated Pod answers UH.
func (rt *router) targetForCluster(cfg *xdsConfig, d destination) (target, error) {
	c, ok := cfg.clusters[d.cluster]
	if !ok || d.host == "" {
		return target{}, fmt.Errorf("%w: cluster %s is not one the simulator serves (from CDS: %v)", errNoCluster, d.cluster, ok)
	}
	tgt := target{fqdn: d.host, subset: d.subset, host: rt.hostOf(d.host)}
	var ws []*workload
	var weights []uint32
	var unready []*workload
	var total uint64
	for _, ep := range cfg.endpoints[c.edsName] {
		w := rt.lookup(rt.xds.workloadKey(ep.ip))
		if w == nil {
			continue // not a simulated Pod
		}
		if !ep.healthy {
			unready = append(unready, w)
			continue
		}
		ws, weights = append(ws, w), append(weights, ep.weight)
		total += uint64(ep.weight)
	}
	if total == 0 {
		tgt.unready = unreadyNames(unready)
		return tgt, fmt.Errorf("%w: cluster %s has no healthy endpoint of a simulated Pod", errNoHealthy, d.cluster)
	}
	x := uint64(rt.lb.float64() * float64(total))
	for i, w := range ws {
		if x < uint64(weights[i]) {
			tgt.wl = w
			break
		}
		x -= uint64(weights[i])
	}
	if tgt.wl == nil { // only if rounding carried x past the end
		tgt.wl = ws[len(ws)-1]
	}
	if tgt.host.app == "" {
		tgt.host.app = tgt.wl.app
	}
	return tgt, nil
}

// hostOf returns the catalog's Service for the FQDN host, or one named by
// the host's first label for a Service the catalog does not know (such as
// a Deployment test's checkout-stable), which istiod knows from the API
// server.
func (rt *router) hostOf(fqdn string) hostInfo {
	if h, ok := rt.cat.hosts[fqdn]; ok {
		return h
	}
	name, _, _ := strings.Cut(fqdn, ".")
	return hostInfo{name: name}
}
