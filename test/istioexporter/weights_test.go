package istioexporter

import (
	"testing"
	"time"

	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const testHost = "service-0001.shop.svc.cluster.local"

func dest(host, subset string, weight int32) *istioapi.HTTPRouteDestination {
	return &istioapi.HTTPRouteDestination{Destination: &istioapi.Destination{Host: host, Subset: subset}, Weight: weight}
}

func vs(name string, age time.Duration, routes ...[]*istioapi.HTTPRouteDestination) *networkingv1.VirtualService {
	v := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop",
		CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000, 0).Add(-age))}}
	v.Spec.Hosts = []string{"service-0001"}
	for _, r := range routes {
		v.Spec.Http = append(v.Spec.Http, &istioapi.HTTPRoute{Route: r})
	}
	return v
}

func TestCanaryWeight(t *testing.T) {
	for _, c := range []struct {
		name   string
		vss    []*networkingv1.VirtualService
		weight int32
		ok     bool
	}{
		{"90/10 with the short host", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest("service-0001", "v1", 90), dest("service-0001", "v2", 10)})}, 10, true},
		{"100/0 with the FQDN", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v1", 100), dest(testHost, "v2", 0)})}, 0, true},
		{"relative weights", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v1", 1), dest(testHost, "v2", 1)})}, 50, true},
		{"a lone canary destination without a weight", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v2", 0)})}, 100, true},
		{"a lone stable destination without a weight", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v1", 0)})}, 0, true},
		{"the first route that sends to the host", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest("other", "v2", 100)},
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v1", 70), dest(testHost, "v2", 30)},
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v2", 100)})}, 30, true},
		{"unknown subsets are not the service's versions", []*networkingv1.VirtualService{vs("a", 0,
			[]*istioapi.HTTPRouteDestination{dest(testHost, "v3", 100)})}, 0, false},
		{"the oldest VirtualService wins", []*networkingv1.VirtualService{
			vs("young", time.Minute, []*istioapi.HTTPRouteDestination{dest(testHost, "v1", 50), dest(testHost, "v2", 50)}),
			vs("old", time.Hour, []*istioapi.HTTPRouteDestination{dest(testHost, "v1", 75), dest(testHost, "v2", 25)}),
		}, 25, true},
		{"no VirtualService", nil, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, ok := canaryWeight(c.vss, testHost)
			if w != c.weight || ok != c.ok {
				t.Errorf("canaryWeight = %d, %v; want %d, %v", w, ok, c.weight, c.ok)
			}
		})
	}
}

func TestHostIndexExpandsShortHosts(t *testing.T) {
	v := vs("a", 0)
	v.Spec.Hosts = []string{"service-0001", "service-0002.shop.svc.cluster.local", "*.example.com"}
	got, err := hostIndex(v)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{testHost, "service-0002.shop.svc.cluster.local", "*.example.com"}
	if len(got) != len(want) {
		t.Fatalf("hostIndex = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hostIndex = %v, want %v", got, want)
		}
	}
}
