package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestAnalysisRequestTarget(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	subset := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "r"},
		Spec:   v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "stable", CanarySubset: "canary"},
		Status: v1alpha1.RolloutStatus{Target: &v1alpha1.ResolvedTarget{Host: "checkout", StableVersion: "v1", CanaryVersion: "v2"}}}
	hosts := func(called string) *v1alpha1.Rollout {
		return &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "r"},
			Spec:   v1alpha1.RolloutSpec{VirtualService: "checkout", StableHost: "checkout-primary", CanaryHost: "checkout-canary.shop.svc.cluster.local"},
			Status: v1alpha1.RolloutStatus{Target: &v1alpha1.ResolvedTarget{Host: called}}}
	}
	for _, tc := range []struct {
		name string
		ro   *v1alpha1.Rollout
		want analysis.Target
	}{
		{"subset mode: one host, two versions", subset, analysis.Target{Namespace: "shop", Service: "checkout",
			Canary: analysis.Side{Host: "checkout.shop.svc.cluster.local", Version: "v2"},
			Stable: analysis.Side{Host: "checkout.shop.svc.cluster.local", Version: "v1"}}},
		{"host mode: the service is the host clients call", hosts("checkout.shop.svc.cluster.local"), analysis.Target{
			Namespace: "shop", Service: "checkout", HostMode: true,
			Canary: analysis.Side{Host: "checkout-canary.shop.svc.cluster.local"}, Stable: analysis.Side{Host: "checkout-primary"}}},
		{"host mode without a called host: the canary host's name", hosts(""), analysis.Target{
			Namespace: "shop", Service: "checkout-canary", HostMode: true,
			Canary: analysis.Side{Host: "checkout-canary.shop.svc.cluster.local"}, Stable: analysis.Side{Host: "checkout-primary"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := analysisRequest(tc.ro, analysis.DefaultConfig(), now).Target
			if got.Namespace != tc.want.Namespace || got.Service != tc.want.Service || got.HostMode != tc.want.HostMode ||
				got.Canary.Host != tc.want.Canary.Host || got.Canary.Version != tc.want.Canary.Version ||
				got.Stable.Host != tc.want.Stable.Host || got.Stable.Version != tc.want.Stable.Version {
				t.Errorf("target = %+v, want %+v", got, tc.want)
			}
		})
	}
}
