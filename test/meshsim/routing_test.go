package meshsim

import (
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	apiv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFQDN(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"checkout", "checkout.shop.svc.cluster.local"},
		{"checkout.shop.svc.cluster.local", "checkout.shop.svc.cluster.local"},
		{"checkout.other", "checkout.other"}, // Istio only expands names without a dot
		{"*.shop.svc.cluster.local", "*.shop.svc.cluster.local"},
		{"*", "*"},
	} {
		if got := fqdn(tc.host, "shop"); got != tc.want {
			t.Errorf("fqdn(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

func TestHostMatches(t *testing.T) {
	const h = "checkout.shop.svc.cluster.local"
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{h, true},
		{"*", true},
		{"*.shop.svc.cluster.local", true},
		{"*.svc.cluster.local", true},
		{"*.other.svc.cluster.local", false},
		{"payments.shop.svc.cluster.local", false},
		{"checkout", false}, // patterns are expanded before matching
	} {
		if got := hostMatches(tc.pattern, h); got != tc.want {
			t.Errorf("hostMatches(%q, %q) = %v, want %v", tc.pattern, h, got, tc.want)
		}
	}
}

func TestWeightedIndex(t *testing.T) {
	d := func(ws ...int32) []destination {
		out := make([]destination, len(ws))
		for i, w := range ws {
			out[i] = destination{weight: w}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		u     float64
		dests []destination
		want  int
	}{
		{"single without weight", 0.9, d(0), 0},
		{"all zero takes first", 0.5, d(0, 0), 0},
		{"75/25 low", 0.0, d(75, 25), 0},
		{"75/25 just below edge", 0.7499, d(75, 25), 0},
		{"75/25 at edge", 0.75, d(75, 25), 1},
		{"75/25 high", 0.9999, d(75, 25), 1},
		{"zero weight skipped", 0.1, d(0, 100), 1},
		{"negative counts as zero", 0.99, d(100, -5), 0},
		{"three ways", 0.65, d(50, 10, 40), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := weightedIndex(tc.u, tc.dests); got != tc.want {
				t.Errorf("weightedIndex(%v) = %d, want %d", tc.u, got, tc.want)
			}
		})
	}
}

func TestPickerSplitConvergesQuickly(t *testing.T) {
	p := newPicker(0.123)
	dests := []destination{{weight: 75}, {weight: 25}}
	for _, n := range []int{100, 2000} {
		counts := [2]int{}
		for range n {
			counts[p.pick("k", dests)]++
		}
		if got := float64(counts[1]) / float64(n); got < 0.24 || got > 0.26 {
			t.Errorf("after %d picks at 75/25 the canary share is %.3f, want 0.25±0.01", n, got)
		}
	}
}

// vs builds a VirtualService in namespace shop.
func vs(name string, created int64, spec *apiv1alpha3.VirtualService) *networkingv1.VirtualService {
	v := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", CreationTimestamp: metav1.Unix(created, 0)},
	}
	v.Spec.Hosts, v.Spec.Gateways, v.Spec.Http = spec.Hosts, spec.Gateways, spec.Http
	return v
}

// dr builds a DestinationRule in namespace shop with version subsets.
func dr(host string, subsets ...string) *networkingv1.DestinationRule {
	d := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: host, Namespace: "shop"}}
	d.Spec.Host = host
	for _, s := range subsets {
		d.Spec.Subsets = append(d.Spec.Subsets, &apiv1alpha3.Subset{Name: s, Labels: map[string]string{"version": s}})
	}
	return d
}

// route builds an HTTPRoute to host/subset pairs with weights.
func route(match []*apiv1alpha3.HTTPMatchRequest, dests ...*apiv1alpha3.HTTPRouteDestination) *apiv1alpha3.HTTPRoute {
	return &apiv1alpha3.HTTPRoute{Match: match, Route: dests}
}

// to builds a weighted route destination.
func to(host, subset string, weight int32) *apiv1alpha3.HTTPRouteDestination {
	return &apiv1alpha3.HTTPRouteDestination{
		Destination: &apiv1alpha3.Destination{Host: host, Subset: subset}, Weight: weight,
	}
}

// exact and prefix build StringMatches.
func exact(s string) *apiv1alpha3.StringMatch {
	return &apiv1alpha3.StringMatch{MatchType: &apiv1alpha3.StringMatch_Exact{Exact: s}}
}

func prefix(s string) *apiv1alpha3.StringMatch {
	return &apiv1alpha3.StringMatch{MatchType: &apiv1alpha3.StringMatch_Prefix{Prefix: s}}
}

func regex(s string) *apiv1alpha3.StringMatch {
	return &apiv1alpha3.StringMatch{MatchType: &apiv1alpha3.StringMatch_Regex{Regex: s}}
}

// resolveCase is one routing decision to check.
type resolveCase struct {
	name     string
	vss      []*networkingv1.VirtualService
	drs      []*networkingv1.DestinationRule
	req      request
	wantWL   string
	wantHost string
	wantErr  error
}

// resolveCases are TestResolve's table.
func resolveCases(cat *catalog) []resolveCase {
	frontend := cat.workloads["frontend-v1"]
	checkoutV2 := cat.workloads["checkout-v2"]
	const host = "checkout.shop.svc.cluster.local"
	subsets := []*networkingv1.DestinationRule{dr("checkout", "v1", "v2", "v3")}
	all := func(subset string) *apiv1alpha3.VirtualService {
		return &apiv1alpha3.VirtualService{Hosts: []string{"checkout"}, Http: []*apiv1alpha3.HTTPRoute{
			route(nil, to("checkout", subset, 100)),
		}}
	}
	return []resolveCase{
		{name: "no VirtualService goes to v1", req: request{host: host}, wantWL: "checkout-v1", wantHost: host},
		{name: "no VirtualService, canary host goes to v2",
			req: request{host: "checkout-canary.shop.svc.cluster.local"}, wantWL: "checkout-v2",
			wantHost: "checkout-canary.shop.svc.cluster.local"},
		{name: "subset v2", vss: []*networkingv1.VirtualService{vs("a", 1, all("v2"))}, drs: subsets,
			req: request{host: host}, wantWL: "checkout-v2", wantHost: host},
		{name: "host mode routes to checkout-canary",
			vss: []*networkingv1.VirtualService{vs("a", 1, &apiv1alpha3.VirtualService{
				Hosts: []string{"checkout"}, Gateways: []string{"public-gateway", "mesh"},
				Http: []*apiv1alpha3.HTTPRoute{route(nil, to("checkout-primary", "", 0), to("checkout-canary", "", 100))},
			})},
			req: request{host: host}, wantWL: "checkout-v2", wantHost: "checkout-canary.shop.svc.cluster.local"},
		{name: "gateway-only VirtualService does not apply to sidecars",
			vss: []*networkingv1.VirtualService{vs("a", 1, &apiv1alpha3.VirtualService{
				Hosts: []string{"checkout"}, Gateways: []string{"public-gateway"},
				Http: []*apiv1alpha3.HTTPRoute{route(nil, to("checkout", "v2", 100))},
			})}, drs: subsets, req: request{host: host}, wantWL: "checkout-v1", wantHost: host},
		{name: "oldest VirtualService wins", drs: subsets,
			vss: []*networkingv1.VirtualService{vs("new", 2, all("v1")), vs("old", 1, all("v2"))},
			req: request{host: host}, wantWL: "checkout-v2", wantHost: host},
		{name: "exact host beats an older wildcard", drs: subsets,
			vss: []*networkingv1.VirtualService{
				vs("wild", 1, &apiv1alpha3.VirtualService{Hosts: []string{"*.shop.svc.cluster.local"},
					Http: []*apiv1alpha3.HTTPRoute{route(nil, to("checkout", "v1", 100))}}),
				vs("exact", 2, all("v2"))},
			req: request{host: host}, wantWL: "checkout-v2", wantHost: host},
		{name: "unknown subset is no cluster", vss: []*networkingv1.VirtualService{vs("a", 1, all("v9"))}, drs: subsets,
			req: request{host: host}, wantErr: errNoCluster},
		{name: "subset without a DestinationRule is no cluster", vss: []*networkingv1.VirtualService{vs("a", 1, all("v2"))},
			req: request{host: host}, wantErr: errNoCluster},
		{name: "subset of a version with no workload is no cluster", vss: []*networkingv1.VirtualService{vs("a", 1, all("v3"))},
			drs: subsets, req: request{host: host}, wantErr: errNoCluster},
		{name: "no matching route is no route",
			vss: []*networkingv1.VirtualService{vs("a", 1, &apiv1alpha3.VirtualService{Hosts: []string{"checkout"},
				Http: []*apiv1alpha3.HTTPRoute{route([]*apiv1alpha3.HTTPMatchRequest{{Uri: prefix("/admin")}},
					to("checkout", "", 100))}})},
			req: request{host: host, path: "/checkout"}, wantErr: errNoRoute},
		{name: "header match picks the first route", drs: subsets,
			vss: []*networkingv1.VirtualService{vs("a", 1, &apiv1alpha3.VirtualService{Hosts: []string{"checkout"},
				Http: []*apiv1alpha3.HTTPRoute{
					route([]*apiv1alpha3.HTTPMatchRequest{{Headers: map[string]*apiv1alpha3.StringMatch{"X-Canary": exact("yes")}}},
						to("checkout", "v2", 100)),
					route(nil, to("checkout", "v1", 100)),
				}})},
			req:    request{host: host, header: http.Header{"X-Canary": {"yes"}}, source: frontend},
			wantWL: "checkout-v2", wantHost: host},
		{name: "header mismatch falls through", drs: subsets,
			vss: []*networkingv1.VirtualService{vs("a", 1, &apiv1alpha3.VirtualService{Hosts: []string{"checkout"},
				Http: []*apiv1alpha3.HTTPRoute{
					route([]*apiv1alpha3.HTTPMatchRequest{{Headers: map[string]*apiv1alpha3.StringMatch{"x-canary": exact("yes")}}},
						to("checkout", "v2", 100)),
					route(nil, to("checkout", "v1", 100)),
				}})},
			req:    request{host: host, header: http.Header{"X-Canary": {"no"}}, source: frontend},
			wantWL: "checkout-v1", wantHost: host},
		{name: "unknown host", req: request{host: "nope.shop.svc.cluster.local"}, wantErr: errNoCluster},
		{name: "source labels select the route", drs: []*networkingv1.DestinationRule{dr("payments", "v1")},
			vss: []*networkingv1.VirtualService{vs("p", 1, &apiv1alpha3.VirtualService{Hosts: []string{"payments"},
				Http: []*apiv1alpha3.HTTPRoute{
					route([]*apiv1alpha3.HTTPMatchRequest{{SourceLabels: map[string]string{"version": "v1"}}},
						to("payments", "v1", 100)),
				}})},
			req: request{host: "payments.shop.svc.cluster.local", source: checkoutV2}, wantErr: errNoRoute},
	}
}

func TestResolve(t *testing.T) {
	cat := newCatalog("shop")
	for _, tc := range resolveCases(cat) {
		t.Run(tc.name, func(t *testing.T) {
			tbl, errs := buildTable(tc.vss, tc.drs)
			if len(errs) > 0 {
				t.Fatalf("buildTable: %v", errs)
			}
			r := newRouter(cat, newPicker(0))
			r.table.Store(tbl)
			if tc.req.method == "" {
				tc.req.method = http.MethodGet
			}
			got, err := r.resolve(&tc.req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("resolve: err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if got.wl.name() != tc.wantWL || got.fqdn != tc.wantHost {
				t.Errorf("resolve = %s via %s, want %s via %s", got.wl.name(), got.fqdn, tc.wantWL, tc.wantHost)
			}
		})
	}
}

func TestMatchCond(t *testing.T) {
	cat := newCatalog("shop")
	src := cat.workloads["frontend-v1"]
	req := &request{host: "checkout.shop.svc.cluster.local", path: "/checkout/cart", method: http.MethodGet,
		header: http.Header{"X-User": {"alice"}, "Cookie": {"canary=always; session=1"}}, source: src}
	for _, tc := range []struct {
		name string
		m    *apiv1alpha3.HTTPMatchRequest
		want bool
	}{
		{"empty matches", &apiv1alpha3.HTTPMatchRequest{}, true},
		{"uri prefix", &apiv1alpha3.HTTPMatchRequest{Uri: prefix("/checkout")}, true},
		{"uri prefix miss", &apiv1alpha3.HTTPMatchRequest{Uri: prefix("/pay")}, false},
		{"uri exact miss", &apiv1alpha3.HTTPMatchRequest{Uri: exact("/checkout")}, false},
		{"uri regex is anchored", &apiv1alpha3.HTTPMatchRequest{Uri: regex("/check")}, false},
		{"uri regex", &apiv1alpha3.HTTPMatchRequest{Uri: regex("/check.*")}, true},
		{"ignore uri case", &apiv1alpha3.HTTPMatchRequest{Uri: prefix("/CHECKOUT"), IgnoreUriCase: true}, true},
		{"header exact, name case-insensitive", &apiv1alpha3.HTTPMatchRequest{
			Headers: map[string]*apiv1alpha3.StringMatch{"x-user": exact("alice")}}, true},
		{"header prefix miss", &apiv1alpha3.HTTPMatchRequest{
			Headers: map[string]*apiv1alpha3.StringMatch{"x-user": prefix("bob")}}, false},
		{"header presence", &apiv1alpha3.HTTPMatchRequest{
			Headers: map[string]*apiv1alpha3.StringMatch{"x-user": {}}}, true},
		{"header absent", &apiv1alpha3.HTTPMatchRequest{
			Headers: map[string]*apiv1alpha3.StringMatch{"x-canary": {}}}, false},
		{"cookie regex (Flagger A/B)", &apiv1alpha3.HTTPMatchRequest{
			Headers: map[string]*apiv1alpha3.StringMatch{"cookie": regex("^(.*?;)?(canary=always)(;.*)?$")}}, true},
		{"without header", &apiv1alpha3.HTTPMatchRequest{
			WithoutHeaders: map[string]*apiv1alpha3.StringMatch{"x-user": exact("alice")}}, false},
		{"method", &apiv1alpha3.HTTPMatchRequest{Method: exact("POST")}, false},
		{"source labels", &apiv1alpha3.HTTPMatchRequest{SourceLabels: map[string]string{"app": "frontend"}}, true},
		{"source labels miss", &apiv1alpha3.HTTPMatchRequest{SourceLabels: map[string]string{"app": "checkout"}}, false},
		{"source namespace", &apiv1alpha3.HTTPMatchRequest{SourceNamespace: "other"}, false},
		{"gateway-only match", &apiv1alpha3.HTTPMatchRequest{Gateways: []string{"public"}}, false},
		{"mesh match", &apiv1alpha3.HTTPMatchRequest{Gateways: []string{"public", "mesh"}}, true},
		{"query param absent", &apiv1alpha3.HTTPMatchRequest{
			QueryParams: map[string]*apiv1alpha3.StringMatch{"debug": exact("1")}}, false},
		{"authority", &apiv1alpha3.HTTPMatchRequest{Authority: prefix("checkout.")}, true},
		{"other port", &apiv1alpha3.HTTPMatchRequest{Port: 9080}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := convertMatch(tc.m)
			if err != nil {
				t.Fatalf("convertMatch: %v", err)
			}
			if got := c.matches(req); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBuildTableRejectsBadRegexOnly(t *testing.T) {
	bad := vs("bad", 1, &apiv1alpha3.VirtualService{Hosts: []string{"checkout"}, Http: []*apiv1alpha3.HTTPRoute{
		route([]*apiv1alpha3.HTTPMatchRequest{{Uri: regex("(")}}, to("checkout", "", 100)),
	}})
	good := vs("good", 2, &apiv1alpha3.VirtualService{Hosts: []string{"payments"}, Http: []*apiv1alpha3.HTTPRoute{
		route(nil, to("payments", "", 100)),
	}})
	tbl, errs := buildTable([]*networkingv1.VirtualService{bad, good}, nil)
	if len(errs) != 1 {
		t.Fatalf("errors = %v, want one for VirtualService shop/bad", errs)
	}
	if len(tbl.vss) != 1 || tbl.vss[0].name != "good" {
		t.Errorf("table has %+v, want only shop/good", tbl.vss)
	}
}

func TestFaultValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Fault
		ok   bool
	}{
		{"zero", Fault{}, true},
		{"full", Fault{ErrorRate: 0.2, LatencyMs: 300, LatencyJitterMs: 50, DownstreamCalls: 3, DownstreamLatencyMs: 200}, true},
		{"rate above 1", Fault{ErrorRate: 1.5}, false},
		{"negative rate", Fault{ErrorRate: -0.1}, false},
		{"NaN rate", Fault{ErrorRate: math.NaN()}, false},
		{"negative latency", Fault{LatencyMs: -1}, false},
		{"latency too high", Fault{LatencyMs: maxFaultLatencyMs + 1}, false},
		{"too many calls", Fault{DownstreamCalls: maxDownstreamCalls + 1}, false},
		{"negative downstream latency", Fault{DownstreamLatencyMs: -5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidFault) {
				t.Errorf("error %v does not wrap ErrInvalidFault", err)
			}
		})
	}
}

func TestFaultLatencyJitterStaysInRange(t *testing.T) {
	f := Fault{LatencyMs: 300, LatencyJitterMs: 50}
	r := newStream(randomSeed(), "latency/checkout-v2")
	for range 1000 {
		if d := f.latency(r); d < 250*time.Millisecond || d > 350*time.Millisecond {
			t.Fatalf("latency %v outside 300±50ms", d)
		}
	}
}
