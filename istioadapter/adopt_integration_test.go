package istioadapter

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// workloadVS routes checkout to its Service alone, as a team has it
// before serin delivers the workload, next to a route to another host.
const workloadVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: checkout
spec:
  hosts: [checkout]
  http:
  - name: admin
    match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: admin}}]
  - name: main
    retries: {attempts: 3}
    route:
    - destination: {host: checkout, port: {number: 8080}}`

func workloadTarget(e *env) rollout.Target {
	return rollout.Target{Namespace: e.ns, VirtualService: "checkout", StableSubset: "stable", CanarySubset: "canary"}
}

func TestAdoptRouteAddsTrackSubsetsAndSendsAllToStable(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", workloadVS)
	e.apply("", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: checkout
spec:
  host: checkout
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets:
  - name: v1
    labels: {version: v1}`)
	tgt := workloadTarget(e)
	if err := e.router.CheckAdoption(e.ctx, tgt); err != nil {
		t.Fatalf("CheckAdoption: %v", err)
	}
	for range 2 { // the second call finds everything so and writes nothing
		if err := e.router.AdoptRoute(e.ctx, tgt); err != nil {
			t.Fatalf("AdoptRoute: %v", err)
		}
	}
	// A zero weight is omitted from the stored JSON, as Istio's types do.
	if got := e.weights("checkout", 1); !slices.Equal(got, []int64{100, 0}) && !slices.Equal(got, []int64{100, -1}) {
		t.Fatalf("weights %v, want 100 and 0", got)
	}
	vs, err := e.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	main := vs.Spec.Http[1]
	if d := main.Route; d[0].Destination.Subset != "stable" || d[1].Destination.Subset != "canary" ||
		d[0].Destination.Port.GetNumber() != 8080 || main.Retries.GetAttempts() != 3 {
		t.Fatalf("route main = %v, want stable/canary on port 8080 with its retries kept", main)
	}
	if vs.Spec.Http[0].Route[0].Destination.Host != "admin" || vs.Spec.Http[0].Route[0].Destination.Subset != "" {
		t.Fatalf("the admin route changed: %v", vs.Spec.Http[0])
	}
	dr, err := e.istio.NetworkingV1().DestinationRules(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range dr.Spec.Subsets {
		names = append(names, s.Name)
		// At rest both select the stable pods: no subset selects none.
		if s.Name == "stable" || s.Name == "canary" {
			if !maps.Equal(s.Labels, map[string]string{v1alpha1.LabelTrack: "stable"}) {
				t.Errorf("subset %s selects %v, want the stable track", s.Name, s.Labels)
			}
		}
	}
	if !slices.Equal(names, []string{"v1", "stable", "canary"}) || dr.Spec.TrafficPolicy.GetTls().GetMode().String() != "ISTIO_MUTUAL" {
		t.Fatalf("DestinationRule subsets %v, policy %v; want v1 kept, stable and canary added, the policy kept", names, dr.Spec.TrafficPolicy)
	}
	// The weights are the router's from now on.
	if w, err := e.router.CanaryWeight(e.ctx, tgt); err != nil || w != 0 {
		t.Fatalf("CanaryWeight = %d, %v", w, err)
	}
	// With the copies' pods there (IST0173), the preflight of a release passes.
	e.pod("checkout-stable-1", map[string]string{"app": "checkout", v1alpha1.LabelTrack: "stable"})
	e.pod("checkout-canary-1", map[string]string{"app": "checkout", v1alpha1.LabelTrack: "canary"})
	if pf, err := e.router.Preflight(e.ctx, tgt); err != nil || !pf.OK() {
		t.Fatalf("preflight after adoption: %+v, %v", pf.Failures, err)
	}
	// A release points the canary subset at the canary's pods, and back.
	for _, tr := range []rollout.Track{rollout.TrackCanary, rollout.TrackCanary, rollout.TrackStable} {
		if err := e.router.SelectCanaryTrack(e.ctx, tgt, tr); err != nil {
			t.Fatalf("SelectCanaryTrack(%s): %v", tr, err)
		}
		dr, err := e.istio.NetworkingV1().DestinationRules(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := dr.Spec.Subsets[2].Labels; dr.Spec.Subsets[2].Name != "canary" || !maps.Equal(got, map[string]string{v1alpha1.LabelTrack: string(tr)}) {
			t.Fatalf("after SelectCanaryTrack(%s) the canary subset selects %v", tr, got)
		}
		if got := dr.Spec.Subsets[1].Labels; !maps.Equal(got, map[string]string{v1alpha1.LabelTrack: "stable"}) {
			t.Fatalf("the stable subset changed to %v", got)
		}
	}
}

func TestAdoptRouteCreatesADestinationRuleWhenThereIsNone(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", workloadVS)
	if err := e.router.AdoptRoute(e.ctx, workloadTarget(e)); err != nil {
		t.Fatalf("AdoptRoute: %v", err)
	}
	dr, err := e.istio.NetworkingV1().DestinationRules(e.ns).Get(e.ctx, "serin-checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("serin's DestinationRule: %v", err)
	}
	if dr.Spec.Host != "checkout" || len(dr.Spec.Subsets) != 2 || dr.Labels["app.kubernetes.io/managed-by"] != "serin" {
		t.Fatalf("DestinationRule %v %v", dr.Labels, &dr.Spec)
	}
}

func TestAdoptionRefusalsWriteNothing(t *testing.T) {
	for _, c := range []struct {
		name, docs, route, want string
		kind                    error
	}{{
		name: "a subset of serin's name selects other pods", want: `already has a subset "stable"`, kind: ErrForeignDestination,
		docs: workloadVS + "\n---\n" + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: checkout
spec:
  host: checkout
  subsets:
  - name: stable
    labels: {version: v1}`,
	}, {
		name: "the named route goes to two hosts", route: "split", want: "more than one host", kind: ErrForeignDestination,
		docs: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: checkout
spec:
  hosts: [checkout]
  http:
  - name: split
    route:
    - {destination: {host: checkout}, weight: 50}
    - {destination: {host: legacy}, weight: 50}`,
	}, {
		name: "no VirtualService", want: "not found", kind: rollout.ErrNotFound,
	}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if c.docs != "" {
				e.apply("", c.docs)
			}
			before := ""
			if c.docs != "" {
				before = e.raw("checkout").GetResourceVersion()
			}
			tgt := workloadTarget(e)
			tgt.Route = c.route
			for _, err := range []error{e.router.CheckAdoption(e.ctx, tgt), e.router.AdoptRoute(e.ctx, tgt)} {
				if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.kind) {
					t.Fatalf("err = %v, want %q wrapping %v", err, c.want, c.kind)
				}
			}
			if c.docs != "" && e.raw("checkout").GetResourceVersion() != before {
				t.Errorf("the VirtualService was written")
			}
			drs, err := e.istio.NetworkingV1().DestinationRules(e.ns).List(e.ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, dr := range drs.Items {
				if dr.Name != "checkout" || len(dr.Spec.Subsets) != 1 {
					t.Errorf("DestinationRule %s written: %v", dr.Name, dr.Spec.Subsets)
				}
			}
		})
	}
}
