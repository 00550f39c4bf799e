package istioadapter

import (
	"errors"
	"strings"
	"testing"

	apinet "istio.io/api/networking/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout"
)

func dest(host, subset string, w int32) *apinet.HTTPRouteDestination {
	return &apinet.HTTPRouteDestination{Destination: &apinet.Destination{Host: host, Subset: subset}, Weight: w}
}

func httpRoute(name string, ds ...*apinet.HTTPRouteDestination) *apinet.HTTPRoute {
	return &apinet.HTTPRoute{Name: name, Route: ds}
}

func vsOf(routes ...*apinet.HTTPRoute) *netv1.VirtualService {
	return &netv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", ResourceVersion: "7"},
		Spec:       apinet.VirtualService{Hosts: []string{"checkout"}, Http: routes},
	}
}

func subsets(route, host string) rollout.Target {
	return rollout.Target{Namespace: "shop", VirtualService: "checkout", Route: route, Host: host,
		StableSubset: "stable", CanarySubset: "canary"}
}

func hosts(route string) rollout.Target {
	return rollout.Target{Namespace: "shop", VirtualService: "checkout", Route: route,
		StableHost: "checkout-primary", CanaryHost: "checkout-canary"}
}

// split is a route split 90/10 between the stable and canary subsets.
func split(name string) *apinet.HTTPRoute {
	return httpRoute(name, dest("checkout", "stable", 90), dest("checkout", "canary", 10))
}

var fallback = httpRoute("fallback", dest("legacy", "", 0))

// resolveTests are the cases of TestResolveRoute, kept out of the function
// to keep it short.
var resolveTests = []struct {
	name   string
	vs     *netv1.VirtualService
	t      rollout.Target
	want   resolved
	err    error  // sentinel the error wraps; nil means success
	check  string // the resolveError's preflight check
	substr string // part of the message
}{
	{name: "named route, subset mode",
		vs:   vsOf(fallback, split("main")),
		t:    subsets("main", ""),
		want: resolved{HTTP: 1, Name: "main", Host: "checkout", Stable: 0, Canary: 1}},
	{name: "named route, canary listed first",
		vs:   vsOf(httpRoute("main", dest("checkout", "canary", 0), dest("checkout", "stable", 100))),
		t:    subsets("main", ""),
		want: resolved{HTTP: 0, Name: "main", Host: "checkout", Stable: 1, Canary: 0}},
	{name: "FQDN destinations match a short Target.Host",
		vs: vsOf(httpRoute("main", dest("checkout.shop.svc.cluster.local", "stable", 100),
			dest("checkout.shop.svc.cluster.local", "canary", 0))),
		t:    subsets("main", "checkout"),
		want: resolved{HTTP: 0, Name: "main", Host: "checkout", Stable: 0, Canary: 1}},
	{name: "route found without a name",
		vs:   vsOf(fallback, split("a"), httpRoute("b", dest("checkout", "stable", 0))),
		t:    subsets("", ""),
		want: resolved{HTTP: 1, Name: "a", Host: "checkout", Stable: 0, Canary: 1}},
	{name: "unnamed route is called http[N]",
		vs:   vsOf(fallback, split("")),
		t:    subsets("", ""),
		want: resolved{HTTP: 1, Name: "http[1]", Host: "checkout", Stable: 0, Canary: 1}},
	{name: "unnamed route addressed as http[N]",
		vs:   vsOf(split(""), split("")),
		t:    subsets("http[1]", ""),
		want: resolved{HTTP: 1, Name: "http[1]", Host: "checkout", Stable: 0, Canary: 1}},
	{name: "host mode",
		vs: vsOf(fallback, httpRoute("main", dest("checkout-primary", "", 80),
			dest("checkout-canary.shop.svc.cluster.local", "", 20))),
		t:    hosts(""),
		want: resolved{HTTP: 1, Name: "main", Stable: 0, Canary: 1}},
	{name: "no route with that name",
		vs:  vsOf(split("main"), fallback),
		t:   subsets("primary", ""),
		err: rollout.ErrNotFound, check: checkRoute,
		substr: `VirtualService shop/checkout has no http route named "primary" (routes: "main" -> checkout/stable, checkout/canary; "fallback" -> legacy)`},
	{name: "no route with both destinations",
		vs:  vsOf(httpRoute("main", dest("checkout", "stable", 100)), fallback),
		t:   subsets("", ""),
		err: rollout.ErrNotFound, check: checkRoute,
		substr: `has no http route with both the stable (subset "stable") and the canary (subset "canary") destination (routes: "main" -> checkout/stable; "fallback" -> legacy)`},
	{name: "no route for another host",
		vs:  vsOf(split("main")),
		t:   subsets("", "payments"),
		err: rollout.ErrNotFound, check: checkRoute,
		substr: `stable ("payments" subset "stable")`},
	{name: "two routes with both destinations",
		vs:  vsOf(split("a"), fallback, split("b")),
		t:   subsets("", ""),
		err: ErrAmbiguousRoute, check: checkRoute,
		substr: `VirtualService shop/checkout has 2 http routes with both the stable (subset "stable") and the canary (subset "canary") destination ("a" -> checkout/stable, checkout/canary; "b" -> checkout/stable, checkout/canary)`},
	{name: "missing canary destination",
		vs:   vsOf(httpRoute("main", dest("checkout", "stable", 100))),
		t:    subsets("main", ""),
		want: resolved{HTTP: 0, Name: "main", Host: "checkout", Stable: 0, Canary: -1},
		err:  rollout.ErrNotFound, check: checkDestinations,
		substr: `VirtualService shop/checkout route "main" has no canary destination "checkout" subset "canary" (destinations: checkout/stable)`},
	{name: "missing stable host",
		vs:   vsOf(httpRoute("main", dest("checkout-canary", "", 100))),
		t:    hosts("main"),
		want: resolved{HTTP: 0, Name: "main", Stable: -1, Canary: 0},
		err:  rollout.ErrNotFound, check: checkDestinations,
		substr: `has no stable destination host "checkout-primary"`},
	{name: "foreign destination",
		vs: vsOf(httpRoute("main", dest("checkout", "stable", 80), dest("checkout", "canary", 10),
			dest("checkout", "shadow", 10))),
		t:   subsets("main", ""),
		err: ErrForeignDestination, check: checkDestinations,
		substr: `VirtualService shop/checkout route "main" also sends traffic to checkout/shadow`},
	{name: "canary on another host is foreign",
		vs:  vsOf(httpRoute("main", dest("checkout", "stable", 80), dest("payments", "canary", 20))),
		t:   subsets("main", ""),
		err: ErrForeignDestination, check: checkDestinations,
		substr: `also sends traffic to payments/canary`},
	{name: "duplicate destination",
		vs: vsOf(httpRoute("main", dest("checkout", "stable", 50), dest("checkout", "canary", 0),
			dest("checkout.shop", "stable", 50))),
		t:   subsets("main", ""),
		err: ErrForeignDestination, check: checkDestinations,
		substr: `lists destination checkout.shop/stable twice`},
	{name: "both modes set",
		vs:  vsOf(split("main")),
		t:   func() rollout.Target { t := hosts(""); t.StableSubset = "stable"; return t }(),
		err: ErrInvalidTarget, check: checkTarget, substr: "sets both hosts and subsets"},
	{name: "same subsets",
		vs:  vsOf(split("main")),
		t:   func() rollout.Target { t := subsets("", ""); t.CanarySubset = "stable"; return t }(),
		err: ErrInvalidTarget, check: checkTarget, substr: "two different subsets"},
	{name: "canary host without stable host",
		vs:  vsOf(split("main")),
		t:   rollout.Target{Namespace: "shop", VirtualService: "checkout", CanaryHost: "x"},
		err: ErrInvalidTarget, check: checkTarget, substr: "without a stable host"},
}

func TestResolveRoute(t *testing.T) {
	for _, tc := range resolveTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveRoute(tc.vs, tc.t)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("resolveRoute: %v", err)
				}
				if got != tc.want {
					t.Fatalf("resolveRoute = %+v, want %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("resolveRoute error = %v, want one wrapping %v", err, tc.err)
			}
			var re *resolveError
			if !errors.As(err, &re) || re.check != tc.check {
				t.Fatalf("error %v: want check %q", err, tc.check)
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("error message\n  %s\ndoes not contain\n  %s", err, tc.substr)
			}
			if tc.want.Name != "" && got != tc.want {
				t.Fatalf("partial resolution = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSameHost(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"checkout", "checkout", true},
		{"checkout", "checkout.shop", true},
		{"checkout", "checkout.shop.svc", true},
		{"checkout", "checkout.shop.svc.cluster.local", true},
		{"checkout.shop.svc.cluster.local.", "Checkout", true},
		{"checkout", "checkout.other", false},
		{"checkout", "checkout.other.svc.cluster.local", false},
		{"checkout", "payments", false},
		{"checkout", "checkout-canary", false},
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "api", false},
		{"", "", false},
		{"*", "checkout", false},
	}
	for _, tc := range tests {
		if got := sameHost(tc.a, tc.b, "shop"); got != tc.want {
			t.Errorf("sameHost(%q, %q, shop) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := sameHost(tc.b, tc.a, "shop"); got != tc.want {
			t.Errorf("sameHost(%q, %q, shop) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestWeightOf(t *testing.T) {
	tests := []struct {
		name string
		r    *apinet.HTTPRoute
		j    int
		want int32
	}{
		{"set", httpRoute("", dest("a", "", 30), dest("b", "", 70)), 1, 70},
		{"missing is zero", httpRoute("", dest("a", "", 100), dest("b", "", 0)), 1, 0},
		{"only destination without weight gets all", httpRoute("", dest("a", "", 0)), 0, 100},
		{"only destination with weight", httpRoute("", dest("a", "", 100)), 0, 100},
	}
	for _, tc := range tests {
		if got := weightOf(tc.r, tc.j); got != tc.want {
			t.Errorf("%s: weightOf = %d, want %d", tc.name, got, tc.want)
		}
	}
}
