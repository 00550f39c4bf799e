package meshsim

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	// The retry host predicate of Istio's routes, so that protojson can read
	// the captured configuration's Any fields.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// istiodRoutes reads testdata/istiod-route-80.json: the RouteConfiguration
// "80" that istiod (pilot-discovery of istio.io/istio
// v0.0.0-20260827124520-eed52ebb66ad) sent to the sidecar of frontend-v1 in
// namespace shop, with the demo's Services, a DestinationRule for checkout
// (subsets v1, v2), a VirtualService for checkout with the routes hdr
// (x-canary: yes and prefix /checkout → v2), exact-path (POST
// /checkout/exact → checkout-canary), regex (/cart/[0-9]+ ignoring case,
// or x-user ~ beta-.*, x-trace present, no x-skip: 1, ?debug=on → v1 30,
// v2 70), authority (checkout.shop* and x-env: stag* → checkout-primary)
// and primary (v1 75, v2 25), and one for frontend (checkout-primary 90,
// checkout-canary 10).
func istiodRoutes(t *testing.T) *routev3.RouteConfiguration {
	t.Helper()
	b, err := os.ReadFile("testdata/istiod-route-80.json")
	if err != nil {
		t.Fatal(err)
	}
	var a anypb.Any
	if err := protojson.Unmarshal(b, &a); err != nil {
		t.Fatalf("decode testdata: %v", err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := a.UnmarshalTo(rc); err != nil {
		t.Fatalf("decode testdata: %v", err)
	}
	return rc
}

func TestConvertIstiodRoutes(t *testing.T) {
	routes, err := convertRouteConfig(istiodRoutes(t))
	if err != nil {
		t.Fatalf("convertRouteConfig: %v", err)
	}
	const checkout = "checkout.shop.svc.cluster.local"
	v1, v2 := "outbound|80|v1|"+checkout, "outbound|80|v2|"+checkout
	primary, canary := "outbound|80||checkout-primary.shop.svc.cluster.local", "outbound|80||checkout-canary.shop.svc.cluster.local"
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name, host, method, path, query string
		header                          http.Header
		route                           string
		want                            map[string]int32 // cluster → weight
	}{
		{name: "header and prefix", host: checkout, path: "/checkout/x", header: hdr("X-Canary", "yes"),
			route: "hdr", want: map[string]int32{v2: 1}},
		{name: "header value differs", host: checkout, path: "/checkout", header: hdr("X-Canary", "no"),
			route: "primary", want: map[string]int32{v1: 75, v2: 25}},
		{name: "exact path and method", host: checkout, method: http.MethodPost, path: "/checkout/exact",
			route: "exact-path", want: map[string]int32{canary: 1}},
		{name: "exact path, other method", host: checkout, path: "/checkout/exact", route: "primary", want: map[string]int32{v1: 75, v2: 25}},
		{name: "regex", host: checkout, path: "/cart/42", route: "regex", want: map[string]int32{v1: 30, v2: 70}},
		{name: "regex is whole-path and case-sensitive in Envoy", host: checkout, path: "/CART/42x", route: "primary",
			want: map[string]int32{v1: 75, v2: 25}},
		{name: "headers, present, without and query", host: checkout, path: "/", query: "debug=on",
			header: hdr("X-User", "beta-7", "X-Trace", ""), route: "regex", want: map[string]int32{v1: 30, v2: 70}},
		{name: "withoutHeaders excludes", host: checkout, path: "/", query: "debug=on",
			header: hdr("X-User", "beta-7", "X-Trace", "", "X-Skip", "1"), route: "primary", want: map[string]int32{v1: 75, v2: 25}},
		{name: "query parameter missing", host: checkout, path: "/", header: hdr("X-User", "beta-7", "X-Trace", ""),
			route: "primary", want: map[string]int32{v1: 75, v2: 25}},
		{name: "authority prefix", host: checkout, path: "/", header: hdr("X-Env", "staging"), route: "authority",
			want: map[string]int32{primary: 1}},
		{name: "short host name, port ignored", host: "checkout:80", path: "/", route: "primary", want: map[string]int32{v1: 75, v2: 25}},
		{name: "host mode", host: "frontend.shop.svc.cluster.local", path: "/", route: "",
			want: map[string]int32{primary: 90, canary: 10}},
		{name: "unknown host goes to allow_any", host: "nowhere.example.com", path: "/", route: "allow_any",
			want: map[string]int32{"PassthroughCluster": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			r := &request{host: tc.host, path: tc.path, method: http.MethodGet, query: q, header: tc.header}
			if tc.method != "" {
				r.method = tc.method
			}
			if r.header == nil {
				r.header = http.Header{}
			}
			vh := routes.findVHost(r.host)
			if vh == nil {
				t.Fatalf("no virtual host for %s", r.host)
			}
			i := vh.firstRoute(r)
			if i < 0 {
				t.Fatalf("no route in %s", vh.name)
			}
			got := map[string]int32{}
			for _, d := range vh.routes[i].dests {
				got[d.cluster] = d.weight
			}
			if vh.routes[i].name != tc.route || !equalWeights(got, tc.want) {
				t.Errorf("route %q → %v, want %q → %v", vh.routes[i].name, got, tc.route, tc.want)
			}
		})
	}
}

// equalWeights compares two cluster → weight maps.
func equalWeights(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestWeightedClustersFromIstiodRoutes(t *testing.T) {
	routes, err := convertRouteConfig(istiodRoutes(t))
	if err != nil {
		t.Fatal(err)
	}
	wc := routes.weightedClusters()
	var primary []WeightedCluster
	for _, c := range wc["checkout.shop.svc.cluster.local"] {
		if c.Route == "primary" {
			primary = append(primary, c)
		}
	}
	want := []WeightedCluster{
		{Route: "primary", Cluster: "outbound|80|v1|checkout.shop.svc.cluster.local", Host: "checkout.shop.svc.cluster.local", Subset: "v1", Weight: 75},
		{Route: "primary", Cluster: "outbound|80|v2|checkout.shop.svc.cluster.local", Host: "checkout.shop.svc.cluster.local", Subset: "v2", Weight: 25},
	}
	if len(primary) != 2 || primary[0] != want[0] || primary[1] != want[1] {
		t.Errorf("checkout's primary route = %+v, want %+v", primary, want)
	}
	fe := wc["frontend.shop.svc.cluster.local"]
	if len(fe) != 2 || fe[0].Route != "#0" || fe[0].Host != "checkout-primary.shop.svc.cluster.local" || fe[0].Subset != "" || fe[0].Weight != 90 {
		t.Errorf("frontend's clusters = %+v", fe)
	}
}

func TestClusterDestination(t *testing.T) {
	for _, tc := range []struct {
		name, host, subset string
	}{
		{"outbound|80|v2|checkout.shop.svc.cluster.local", "checkout.shop.svc.cluster.local", "v2"},
		{"outbound|80||checkout-canary.shop.svc.cluster.local", "checkout-canary.shop.svc.cluster.local", ""},
		{"PassthroughCluster", "", ""},
		{"inbound|8080||", "", ""},
	} {
		d := clusterDestination(tc.name, 7)
		if d.host != tc.host || d.subset != tc.subset || d.cluster != tc.name || d.weight != 7 {
			t.Errorf("clusterDestination(%q) = %+v, want host %q subset %q", tc.name, d, tc.host, tc.subset)
		}
	}
}

func TestConvertRouteConfigRefusesWhatIsNotSimulated(t *testing.T) {
	base := func(r *routev3.Route) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "x:80", Domains: []string{"x"}, Routes: []*routev3.Route{r}}}}
	}
	prefix := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	for _, tc := range []struct {
		name        string
		route       *routev3.Route
		unsupported bool
	}{
		{"cluster from a header", &routev3.Route{Match: prefix, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: "x-cluster"}}}}, true},
		{"filter action", &routev3.Route{Match: prefix, Action: &routev3.Route_FilterAction{}}, true},
		{"bad regex", &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(unclosed"}}},
			Action: &routev3.Route_Route{}}, false},
		{"no weighted cluster", &routev3.Route{Match: prefix, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{}}}}}, false},
	} {
		_, err := convertRouteConfig(base(tc.route))
		if err == nil || errors.Is(err, errUnsupported) != tc.unsupported {
			t.Errorf("%s: err = %v, want an error (unsupported: %v)", tc.name, err, tc.unsupported)
		}
	}
}
