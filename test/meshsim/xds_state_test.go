package meshsim

import (
	"maps"
	"net/http"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// response builds a DiscoveryResponse of typ holding msgs.
func response(t *testing.T, typ, version, nonce string, msgs ...proto.Message) *discoveryv3.DiscoveryResponse {
	t.Helper()
	r := &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: version, Nonce: nonce}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		r.Resources = append(r.Resources, a)
	}
	return r
}

// edsCluster is an Istio-style EDS cluster named name.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: name}}
}

// assignment is a ClusterLoadAssignment of healthy endpoints at ips.
func assignment(name string, ips ...string) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
	for _, ip := range ips {
		cla.Endpoints[0].LbEndpoints = append(cla.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HealthStatus: corev3.HealthStatus_HEALTHY,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip}}}}}})
	}
	return cla
}

func TestADSStateAcksNacksAndHoldsWhileFrozen(t *testing.T) {
	st := newADSState()
	now := time.Unix(1000, 0)
	init := st.initialRequests()
	if len(init) != 2 || init[0].TypeUrl != typeCluster || init[1].TypeUrl != typeListener {
		t.Fatalf("initial requests = %v, want CDS then LDS", init)
	}
	v1 := "outbound|80|v1|checkout.shop.svc.cluster.local"
	reqs, res := st.onResponse(response(t, typeCluster, "c1", "n1", edsCluster(v1)), now, false)
	if res != "accepted" || len(reqs) != 2 || reqs[0].ResponseNonce != "n1" || reqs[0].VersionInfo != "c1" ||
		reqs[1].TypeUrl != typeEndpoint || len(reqs[1].ResourceNames) != 1 || reqs[1].ResourceNames[0] != v1 {
		t.Fatalf("CDS: %s %v, want an ACK and a request for the cluster's endpoints", res, reqs)
	}
	rc := istiodRoutes(t)
	reqs, res = st.onResponse(response(t, typeRoute, "r1", "n2", rc), now, false)
	if res != "accepted" || len(reqs) != 1 || reqs[0].VersionInfo != "r1" || reqs[0].ResponseNonce != "n2" || reqs[0].ErrorDetail != nil {
		t.Fatalf("RDS: %s %v, want an ACK", res, reqs)
	}
	// A resource of the wrong type cannot be read: NACK with the version
	// still in use and the new nonce; the routes stay.
	reqs, res = st.onResponse(response(t, typeRoute, "r2", "n3", edsCluster("x")), now, false)
	if res != "rejected" || len(reqs) != 1 || reqs[0].VersionInfo != "r1" || reqs[0].ResponseNonce != "n3" || reqs[0].ErrorDetail == nil {
		t.Fatalf("bad RDS: %s %v, want a NACK of r2 keeping r1", res, reqs)
	}
	if st.cfg.routes["80"] == nil || st.types[typeRoute].version != "r1" {
		t.Fatalf("after a NACK the routes are %v at %q, want r1's", st.cfg.routes, st.types[typeRoute].version)
	}
	// Frozen: held, neither applied nor ACKed; thawed: the latest applies.
	later := now.Add(time.Second)
	rc2 := proto.Clone(rc).(interface{ proto.Message })
	for i, v := range []string{"r3", "r4"} {
		reqs, res = st.onResponse(response(t, typeRoute, v, "n"+v, rc2), later.Add(time.Duration(i)*time.Millisecond), true)
		if res != "held" || len(reqs) != 0 {
			t.Fatalf("frozen RDS %s: %s %v, want it held", v, res, reqs)
		}
	}
	if st.types[typeRoute].version != "r1" {
		t.Fatalf("frozen proxy applied %q", st.types[typeRoute].version)
	}
	thawed := later.Add(time.Minute)
	reqs = st.unfreeze(thawed)
	if len(reqs) != 1 || reqs[0].VersionInfo != "r4" || reqs[0].ResponseNonce != "nr4" {
		t.Fatalf("unfreeze sent %v, want the ACK of r4", reqs)
	}
	last := st.routeUpdates[len(st.routeUpdates)-1]
	if len(st.routeUpdates) != 2 || last.Version != "r4" || !last.Received.Equal(later.Add(time.Millisecond)) || !last.Applied.Equal(thawed) {
		t.Errorf("route updates = %+v, want r1 then r4 received before it was applied", st.routeUpdates)
	}
	// A new stream asks again with the versions accepted and no nonce.
	for _, r := range st.initialRequests() {
		if r.ResponseNonce != "" {
			t.Errorf("reconnect request %s carries nonce %q", shortType(r.TypeUrl), r.ResponseNonce)
		}
		if r.TypeUrl == typeRoute && r.VersionInfo != "r4" {
			t.Errorf("reconnect RDS request has version %q, want r4", r.VersionInfo)
		}
	}
}

func TestResolveXDSFollowsWeightedClustersToEndpoints(t *testing.T) {
	cat := newCatalog("shop")
	r := newRouter(cat, newPicker(0.3))
	routes, err := convertRouteConfig(istiodRoutes(t))
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := "outbound|80|v1|checkout.shop.svc.cluster.local", "outbound|80|v2|checkout.shop.svc.cluster.local"
	cfg := &xdsConfig{
		clusters:  map[string]xdsCluster{v1: {name: v1, edsName: v1}, v2: {name: v2, edsName: v2}},
		endpoints: map[string][]xdsEndpoint{v1: {{ip: "10.128.0.1", weight: 1, healthy: true}}, v2: {{ip: "10.128.0.2", weight: 1, healthy: true}}},
		portRoute: map[uint32]string{80: "80"},
		routes:    map[string]*xdsRoutes{"80": routes},
	}
	p := &proxy{id: proxyIdentity{workload: "frontend-v1", pod: "frontend-v1", ip: "10.128.0.3", namespace: "shop"}, ready: make(chan struct{})}
	p.cfg.Store(cfg)
	close(p.ready)
	ps := &proxySet{slots: map[string]*proxySlot{"frontend-v1": {cur: p}}}
	ps.byIP.Store(&map[string]string{"10.128.0.1": "checkout-v1", "10.128.0.2": "checkout-v2"})
	r.xds, r.lookup = ps, func(k string) *workload { return cat.workloads[k] }
	src := cat.workloads["frontend-v1"]
	counts := map[string]int{}
	for range 2000 {
		tgt, err := r.resolve(&request{host: "checkout.shop.svc.cluster.local", path: "/checkout", method: http.MethodGet, header: http.Header{}, source: src})
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		counts[tgt.wl.name()+"/"+tgt.subset]++
	}
	if c := counts["checkout-v2/v2"]; c < 490 || c > 510 || counts["checkout-v1/v1"]+c != 2000 {
		t.Errorf("2000 calls went %v, want 1500 to checkout-v1 (v1) and 500 to checkout-v2 (v2)", counts)
	}
	// A cluster without endpoints of a simulated Pod answers UH; a workload
	// without a sidecar, NC.
	cfg.endpoints[v2] = nil
	if _, err := r.resolve(&request{host: "checkout.shop.svc.cluster.local", path: "/checkout", method: http.MethodGet,
		header: http.Header{"X-Canary": {"yes"}}, source: src}); routeFailure(err).Flags != "UH" {
		t.Errorf("empty cluster: %v, want UH", err)
	}
	if _, err := r.resolve(&request{host: "payments.shop.svc.cluster.local", path: "/pay", method: http.MethodGet,
		header: http.Header{}, source: cat.workloads["checkout-v1"]}); routeFailure(err).Flags != "NC" {
		t.Errorf("no sidecar: %v, want NC", err)
	}
}

// An incremental EDS push carries only the clusters whose endpoints
// moved: the others stay while subscribed (Envoy's rule for the types
// that are not wildcards), and one no longer subscribed goes.
func TestKeepSubscribed(t *testing.T) {
	held := map[string]int{"payments": 1, "inventory": 1, "gone": 1}
	got := keepSubscribed(held, map[string]int{"checkout|canary": 2}, []string{"payments", "inventory", "checkout|canary"})
	want := map[string]int{"payments": 1, "inventory": 1, "checkout|canary": 2}
	if !maps.Equal(got, want) {
		t.Errorf("keepSubscribed = %v, want %v", got, want)
	}
	if held["gone"] != 1 || len(held) != 3 {
		t.Errorf("the held map was changed: %v", held)
	}
}
