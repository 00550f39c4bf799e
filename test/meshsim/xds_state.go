package meshsim

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
)

// The xDS resource types a simulated sidecar subscribes to, in the order
// Envoy asks for them.
const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// xdsTypes are the subscribed types in the order they are (re)applied.
var xdsTypes = []string{typeCluster, typeEndpoint, typeListener, typeRoute}

// shortType names a type URL in logs, metrics and status: cds, eds, lds, rds.
func shortType(url string) string {
	switch url {
	case typeCluster:
		return "cds"
	case typeEndpoint:
		return "eds"
	case typeListener:
		return "lds"
	case typeRoute:
		return "rds"
	}
	return url
}

// maxRouteUpdates bounds the route versions a proxy remembers.
const maxRouteUpdates = 64

// xdsConfig is what one proxy has accepted from istiod. It is immutable
// once published: every accepted response makes a new one.
type xdsConfig struct {
	clusters  map[string]xdsCluster    // by cluster name
	endpoints map[string][]xdsEndpoint // by EDS service name
	portRoute map[uint32]string        // outbound listener port → route config name
	routes    map[string]*xdsRoutes    // by route config name
}

// xdsCluster is one CDS cluster: the EDS name of its endpoints when it has
// them from EDS.
type xdsCluster struct {
	name    string
	edsName string // "" for a cluster that is not of type EDS
}

// xdsEndpoint is one endpoint of a ClusterLoadAssignment: a Pod IP.
type xdsEndpoint struct {
	ip      string
	weight  uint32
	healthy bool
}

// typeState is the protocol state of one resource type on a proxy's ADS
// stream: what was last accepted, the last nonce received (every request
// carries it, so that istiod does not take it as stale), the subscribed
// names, and a response held while the proxy is frozen.
type typeState struct {
	version string
	nonce   string
	names   []string
	pending *discoveryv3.DiscoveryResponse
}

// RouteUpdate is one route configuration version a proxy accepted.
type RouteUpdate struct {
	Version string `json:"version"`
	Nonce   string `json:"nonce"`
	// Received is when the response arrived; Applied when the proxy
	// applied and ACKed it (later than Received if it was frozen).
	Received time.Time `json:"received"`
	Applied  time.Time `json:"applied"`
}

// adsState is a proxy's side of the ADS protocol, with no I/O: it turns each
// response into the requests to send back (ACK, NACK, new subscriptions)
// and keeps the accepted configuration. Its owner serializes the calls.
type adsState struct {
	types        map[string]*typeState
	cfg          *xdsConfig
	received     map[string]time.Time // when the pending response of each type arrived
	routeUpdates []RouteUpdate
}

// newADSState returns the state of a proxy that has accepted nothing.
func newADSState() *adsState {
	s := &adsState{types: map[string]*typeState{}, received: map[string]time.Time{},
		cfg: &xdsConfig{clusters: map[string]xdsCluster{}, endpoints: map[string][]xdsEndpoint{},
			portRoute: map[uint32]string{}, routes: map[string]*xdsRoutes{}}}
	for _, t := range xdsTypes {
		s.types[t] = &typeState{}
	}
	return s
}

// hasRoutes reports whether a route configuration has been accepted.
func (s *adsState) hasRoutes() bool { return s.types[typeRoute].version != "" }

// initialRequests are the requests that open a new stream: clusters and
// listeners (wildcards), and endpoints and routes by the names known so far.
// Each carries the version last accepted, as Envoy's do on a reconnect, and
// no nonce, as nonces belong to the stream that sent them.
func (s *adsState) initialRequests() []*discoveryv3.DiscoveryRequest {
	var out []*discoveryv3.DiscoveryRequest
	for _, t := range []string{typeCluster, typeListener, typeEndpoint, typeRoute} {
		ts := s.types[t]
		ts.nonce, ts.pending = "", nil
		if (t == typeEndpoint || t == typeRoute) && len(ts.names) == 0 {
			continue // asked for once clusters and listeners name them
		}
		out = append(out, &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: ts.version, ResourceNames: ts.names})
	}
	return out
}

// onResponse handles one response received at now. A frozen proxy that has
// routes already holds it, unapplied and unACKed, and sends nothing.
// Otherwise it applies it (see apply).
func (s *adsState) onResponse(r *discoveryv3.DiscoveryResponse, now time.Time, frozen bool) (reqs []*discoveryv3.DiscoveryRequest, result string) {
	ts, ok := s.types[r.GetTypeUrl()]
	if !ok {
		return nil, "ignored" // not subscribed: nothing to ACK
	}
	ts.nonce = r.GetNonce()
	s.received[r.GetTypeUrl()] = now
	if frozen && s.hasRoutes() {
		ts.pending = r
		return nil, "held"
	}
	return s.apply(r, now)
}

// unfreeze applies and ACKs the responses held while frozen, in xdsTypes
// order so that new subscriptions follow the clusters and listeners.
func (s *adsState) unfreeze(now time.Time) []*discoveryv3.DiscoveryRequest {
	var out []*discoveryv3.DiscoveryRequest
	for _, t := range xdsTypes {
		ts := s.types[t]
		if ts.pending == nil {
			continue
		}
		r := ts.pending
		ts.pending = nil
		reqs, _ := s.apply(r, now)
		out = append(out, reqs...)
	}
	return out
}

// apply converts r into a new configuration. If r does not convert it is
// NACKed (the last version accepted, r's nonce, the error) and the previous
// configuration stays; else it is accepted and ACKed, followed by a request
// for new endpoint or route names when the clusters or listeners changed
// them.
func (s *adsState) apply(r *discoveryv3.DiscoveryResponse, now time.Time) ([]*discoveryv3.DiscoveryRequest, string) {
	t := r.GetTypeUrl()
	ts := s.types[t]
	cfg := *s.cfg // a shallow copy: each type replaces its own map
	var err error
	var names []string
	switch t {
	case typeCluster:
		cfg.clusters, names, err = convertClustersResponse(r.GetResources())
	case typeEndpoint:
		var got map[string][]xdsEndpoint
		if got, err = convertEndpointsResponse(r.GetResources()); err == nil {
			cfg.endpoints = keepSubscribed(s.cfg.endpoints, got, ts.names)
		}
	case typeListener:
		cfg.portRoute, names, err = convertListenersResponse(r.GetResources())
	case typeRoute:
		var got map[string]*xdsRoutes
		if got, err = convertRoutesResponse(r.GetResources()); err == nil {
			cfg.routes = keepSubscribed(s.cfg.routes, got, ts.names)
		}
	}
	if err != nil {
		return []*discoveryv3.DiscoveryRequest{{TypeUrl: t, VersionInfo: ts.version, ResponseNonce: r.GetNonce(), ResourceNames: ts.names,
			ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}}}, "rejected"
	}
	s.cfg = &cfg
	ts.version = r.GetVersionInfo()
	out := []*discoveryv3.DiscoveryRequest{{TypeUrl: t, VersionInfo: ts.version, ResponseNonce: r.GetNonce(), ResourceNames: ts.names}}
	if t == typeRoute {
		s.routeUpdates = append(s.routeUpdates, RouteUpdate{Version: ts.version, Nonce: r.GetNonce(), Received: s.received[t], Applied: now})
		if len(s.routeUpdates) > maxRouteUpdates {
			s.routeUpdates = slices.Delete(s.routeUpdates, 0, len(s.routeUpdates)-maxRouteUpdates)
		}
	}
	sub := map[string]string{typeCluster: typeEndpoint, typeListener: typeRoute}[t]
	if sub != "" && !slices.Equal(s.types[sub].names, names) {
		st := s.types[sub]
		st.names = names
		out = append(out, &discoveryv3.DiscoveryRequest{TypeUrl: sub, VersionInfo: st.version, ResponseNonce: st.nonce, ResourceNames: names})
	}
	return out, "accepted"
}

// keepSubscribed merges a response of a type that is not a wildcard (EDS,
// RDS) into what the proxy holds, as Envoy does: such a response carries
// the resources that changed, and those it leaves out stay as they were
// while they are still subscribed. istiod's incremental endpoint pushes
// send only the clusters whose endpoints moved.
func keepSubscribed[V any](held, got map[string]V, subscribed []string) map[string]V {
	out := make(map[string]V, len(subscribed))
	for name, v := range held {
		if slices.Contains(subscribed, name) {
			out[name] = v
		}
	}
	for name, v := range got {
		out[name] = v
	}
	return out
}

// convertClustersResponse reads the CDS clusters and the EDS names they
// need, sorted.
func convertClustersResponse(res []*anypb.Any) (map[string]xdsCluster, []string, error) {
	out := map[string]xdsCluster{}
	eds := map[string]bool{}
	for _, a := range res {
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			return nil, nil, fmt.Errorf("cluster: %w", err)
		}
		xc := xdsCluster{name: c.GetName()}
		if c.GetType() == clusterv3.Cluster_EDS {
			xc.edsName = c.GetEdsClusterConfig().GetServiceName()
			if xc.edsName == "" {
				xc.edsName = c.GetName()
			}
			eds[xc.edsName] = true
		}
		out[xc.name] = xc
	}
	return out, sortedKeys(eds), nil
}

// convertEndpointsResponse reads the ClusterLoadAssignments: each
// endpoint's IP, weight and health. Istio leaves unready endpoints out
// unless told to send them, and then marks them UNHEALTHY.
func convertEndpointsResponse(res []*anypb.Any) (map[string][]xdsEndpoint, error) {
	out := map[string][]xdsEndpoint{}
	for _, a := range res {
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(cla); err != nil {
			return nil, fmt.Errorf("cluster load assignment: %w", err)
		}
		eps := []xdsEndpoint{}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				addr := lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
				if addr == "" {
					continue // a pipe or an internal address: no Pod behind it
				}
				w := lb.GetLoadBalancingWeight().GetValue()
				if w == 0 {
					w = 1
				}
				hs := lb.GetHealthStatus()
				eps = append(eps, xdsEndpoint{ip: addr, weight: w,
					healthy: hs == 0 || hs == 1}) // UNKNOWN or HEALTHY, as Envoy routes to them
			}
		}
		out[cla.GetClusterName()] = eps
	}
	return out, nil
}

// convertListenersResponse maps each listener port to the route
// configuration its HTTP connection manager takes over RDS, and returns
// every such name, sorted.
func convertListenersResponse(res []*anypb.Any) (map[uint32]string, []string, error) {
	out := map[uint32]string{}
	names := map[string]bool{}
	for _, a := range res {
		l := &listenerv3.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			return nil, nil, fmt.Errorf("listener: %w", err)
		}
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc == nil || !tc.MessageIs(&hcmv3.HttpConnectionManager{}) {
					continue
				}
				h := &hcmv3.HttpConnectionManager{}
				if err := tc.UnmarshalTo(h); err != nil {
					return nil, nil, fmt.Errorf("listener %s: http connection manager: %w", l.GetName(), err)
				}
				name := h.GetRds().GetRouteConfigName()
				if name == "" {
					continue // an inline route config (inbound): not for outbound calls
				}
				names[name] = true
				if _, seen := out[port]; !seen {
					out[port] = name
				}
			}
		}
	}
	return out, sortedKeys(names), nil
}

// convertRoutesResponse converts every RouteConfiguration; one that cannot
// be followed rejects the whole response, as Envoy rejects it.
func convertRoutesResponse(res []*anypb.Any) (map[string]*xdsRoutes, error) {
	out := map[string]*xdsRoutes{}
	for _, a := range res {
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			return nil, fmt.Errorf("route configuration: %w", err)
		}
		t, err := convertRouteConfig(rc)
		if err != nil {
			return nil, err
		}
		out[t.name] = t
	}
	return out, nil
}

// sortedKeys returns m's keys, sorted.
func sortedKeys(m map[string]bool) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}
