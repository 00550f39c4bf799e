package istioadapter

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout"
)

// richVS has everything a weight write must leave alone: several http
// routes with header and uri matches, retries, timeouts, a mirror with a
// percentage, a CORS policy, header manipulation at route and destination
// level, a tcp route, labels and annotations. The managed route is http[1]
// "primary", whose canary weight is omitted (0).
const richVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: checkout
  labels: {app: checkout, team: payments}
  annotations: {example.com/owner: ops, example.com/note: "keep me"}
spec:
  hosts: [checkout]
  gateways: [mesh]
  http:
  - name: debug
    match:
    - headers:
        x-debug: {exact: "1"}
      uri: {prefix: /api}
    route:
    - destination: {host: checkout, subset: stable}
    headers:
      request:
        set: {x-route: debug}
      response:
        remove: [x-internal]
    timeout: 3s
  - name: primary
    match:
    - uri: {prefix: /}
      ignoreUriCase: true
    - headers:
        cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}
    route:
    - destination: {host: checkout, subset: stable, port: {number: 8080}}
      weight: 100
      headers:
        response:
          add: {x-served-by: stable}
    - destination: {host: checkout.$NS.svc.cluster.local, subset: canary, port: {number: 8080}}
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}
    timeout: 10s
    mirror: {host: checkout-shadow, port: {number: 8080}}
    mirrorPercentage: {value: 12.5}
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}, {regex: "https://.*[.]example[.]com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
    headers:
      request:
        add: {x-canary-aware: "true"}
  - name: fallback
    route:
    - destination: {host: legacy}
  tcp:
  - match: [{port: 9000}]
    route:
    - destination: {host: checkout, port: {number: 9000}}`

func subsetTarget(e *env, route string) rollout.Target {
	return rollout.Target{Namespace: e.ns, VirtualService: "checkout", Route: route,
		StableSubset: "stable", CanarySubset: "canary"}
}

func TestSetCanaryWeightChangesOnlyTheTwoWeights(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", richVS)
	before := e.masked("checkout", 1)
	for _, field := range []string{`"mirrorPercentage"`, `"corsPolicy"`, `"retries"`, `"tcp"`, `"x-served-by"`, `"ignoreUriCase"`} {
		if !strings.Contains(before, field) {
			t.Fatalf("the stored VirtualService lacks %s, so the test would prove nothing:\n%s", field, before)
		}
	}
	labels, annotations := e.raw("checkout").GetLabels(), e.raw("checkout").GetAnnotations()
	for _, tc := range []struct {
		route string
		w     int32
	}{{"primary", 25}, {"", 0}, {"primary", 100}, {"", 40}} {
		tgt := subsetTarget(e, tc.route)
		if err := e.router.SetCanaryWeight(e.ctx, tgt, tc.w); err != nil {
			t.Fatalf("SetCanaryWeight(%d): %v", tc.w, err)
		}
		if got, want := e.weights("checkout", 1), []int64{int64(100 - tc.w), int64(tc.w)}; !slices.Equal(got, want) {
			t.Fatalf("after SetCanaryWeight(%d): stored weights %v, want %v", tc.w, got, want)
		}
		if got, err := e.router.CanaryWeight(e.ctx, tgt); err != nil || got != tc.w {
			t.Fatalf("CanaryWeight = %d, %v; want %d", got, err, tc.w)
		}
		if after := e.masked("checkout", 1); after != before {
			t.Fatalf("SetCanaryWeight(%d) changed more than the weights:\nbefore %s\nafter %s", tc.w, before, after)
		}
		u := e.raw("checkout")
		if !maps.Equal(u.GetLabels(), labels) || !maps.Equal(u.GetAnnotations(), annotations) {
			t.Fatalf("labels/annotations changed: %v %v, want %v %v", u.GetLabels(), u.GetAnnotations(), labels, annotations)
		}
	}
}

func TestSetCanaryWeightWritesNothingWhenRight(t *testing.T) {
	tr := &tripper{}
	e := newEnv(t, watched(tr))
	e.apply("", richVS)
	// The stored object says stable 100 and omits the canary weight: that
	// is already weight 0.
	rv := e.resourceVersion("checkout")
	if err := e.router.SetCanaryWeight(e.ctx, subsetTarget(e, "primary"), 0); err != nil {
		t.Fatalf("SetCanaryWeight(0): %v", err)
	}
	if err := e.router.SetCanaryWeight(e.ctx, subsetTarget(e, "primary"), 30); err != nil {
		t.Fatalf("SetCanaryWeight(30): %v", err)
	}
	rv30 := e.resourceVersion("checkout")
	if err := e.router.SetCanaryWeight(e.ctx, subsetTarget(e, ""), 30); err != nil {
		t.Fatalf("SetCanaryWeight(30) again: %v", err)
	}
	if got := tr.patches.Load(); got != 1 {
		t.Fatalf("%d PATCH requests, want 1 (only the change to 30)", got)
	}
	if rv == rv30 || e.resourceVersion("checkout") != rv30 {
		t.Fatalf("resourceVersions %s -> %s -> %s: want a change only for the write of 30", rv, rv30, e.resourceVersion("checkout"))
	}
}

func TestSetCanaryWeightRetriesOnConflict(t *testing.T) {
	tr := &tripper{}
	e := newEnv(t, watched(tr))
	e.apply("", richVS)
	other := newEnv(t, nil) // an unwatched client, as a concurrent writer
	tr.beforePATCH = func() {
		vs, err := other.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Errorf("concurrent writer: get: %v", err)
			return
		}
		vs.Annotations["example.com/other-writer"] = "was here"
		if _, err := other.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{}); err != nil {
			t.Errorf("concurrent writer: update: %v", err)
		}
	}
	if err := e.router.SetCanaryWeight(e.ctx, subsetTarget(e, "primary"), 10); err != nil {
		t.Fatalf("SetCanaryWeight(10): %v", err)
	}
	if tr.conflicts.Load() != 1 || tr.patches.Load() != 2 {
		t.Fatalf("%d conflicts in %d PATCH requests, want 1 in 2", tr.conflicts.Load(), tr.patches.Load())
	}
	if got := e.weights("checkout", 1); !slices.Equal(got, []int64{90, 10}) {
		t.Fatalf("stored weights %v, want [90 10]", got)
	}
	if got := e.raw("checkout").GetAnnotations()["example.com/other-writer"]; got != "was here" {
		t.Fatalf("the concurrent writer's annotation is %q, want it kept", got)
	}
}

// TestSetCanaryWeightReadsBack makes another writer change the weights
// right after serin's PATCH: the read-back must report the drift.
func TestSetCanaryWeightReadsBack(t *testing.T) {
	tr := &tripper{}
	e := newEnv(t, watched(tr))
	e.apply("", richVS)
	other := newEnv(t, nil)
	tr.afterPATCH = func() {
		vs, err := other.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Errorf("other writer: get: %v", err)
			return
		}
		vs.Spec.Http[1].Route[0].Weight, vs.Spec.Http[1].Route[1].Weight = 50, 50
		if _, err := other.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{}); err != nil {
			t.Errorf("other writer: update: %v", err)
		}
	}
	err := e.router.SetCanaryWeight(e.ctx, subsetTarget(e, "primary"), 20)
	if !errors.Is(err, rollout.ErrDrift) {
		t.Fatalf("SetCanaryWeight(20) = %v, want an error wrapping rollout.ErrDrift", err)
	}
	want := `read back VirtualService ` + e.ns + `/checkout route "primary": stable 50, canary 50, want 80, 20`
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestHostMode(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: checkout}
spec:
  hosts: [checkout]
  http:
  - name: main
    route:
    - destination: {host: checkout-primary}
      weight: 100
    - destination: {host: checkout-canary.$NS.svc.cluster.local}`)
	tgt := rollout.Target{Namespace: e.ns, VirtualService: "checkout", StableHost: "checkout-primary", CanaryHost: "checkout-canary"}
	if got, err := e.router.CanaryWeight(e.ctx, tgt); err != nil || got != 0 {
		t.Fatalf("CanaryWeight = %d, %v; want 0", got, err)
	}
	if err := e.router.SetCanaryWeight(e.ctx, tgt, 40); err != nil {
		t.Fatalf("SetCanaryWeight(40): %v", err)
	}
	if got := e.weights("checkout", 0); !slices.Equal(got, []int64{60, 40}) {
		t.Fatalf("stored weights %v, want [60 40]", got)
	}
	rep, err := e.router.Preflight(e.ctx, tgt)
	if err != nil || !rep.OK() {
		t.Fatalf("Preflight = %+v, %v; want no failure (host mode needs no DestinationRule)", rep, err)
	}
	if rep.Resolved.Route != "main" || rep.Resolved.Host != "checkout" {
		t.Fatalf("Resolved.Route, Host = %q, %q; want main and the called host checkout", rep.Resolved.Route, rep.Resolved.Host)
	}
}

func TestRefusalsWriteNothing(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", richVS+`
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: twice}
spec:
  hosts: [checkout]
  http:
  - name: a
    route:
    - {destination: {host: checkout, subset: stable}, weight: 100}
    - {destination: {host: checkout, subset: canary}}
  - name: b
    route:
    - {destination: {host: checkout, subset: stable}, weight: 100}
    - {destination: {host: checkout, subset: canary}}
  - name: shadowed
    route:
    - {destination: {host: checkout, subset: stable}, weight: 80}
    - {destination: {host: checkout, subset: canary}}
    - {destination: {host: checkout, subset: shadow}, weight: 20}`)
	twice := func(route string) rollout.Target {
		tgt := subsetTarget(e, route)
		tgt.VirtualService = "twice"
		return tgt
	}
	missing := subsetTarget(e, "")
	missing.VirtualService = "nope"
	tests := []struct {
		name string
		tgt  rollout.Target
		w    int32
		want error
	}{
		{"ambiguous route", twice(""), 10, ErrAmbiguousRoute},
		{"foreign destination", twice("shadowed"), 10, ErrForeignDestination},
		{"missing route", subsetTarget(e, "main"), 10, rollout.ErrNotFound},
		{"missing destination", subsetTarget(e, "debug"), 10, rollout.ErrNotFound},
		{"missing VirtualService", missing, 10, rollout.ErrNotFound},
		{"weight above 100", subsetTarget(e, "primary"), 101, ErrInvalidWeight},
		{"negative weight", subsetTarget(e, "primary"), -1, ErrInvalidWeight},
	}
	rvs := map[string]string{"checkout": e.resourceVersion("checkout"), "twice": e.resourceVersion("twice")}
	for _, tc := range tests {
		err := e.router.SetCanaryWeight(e.ctx, tc.tgt, tc.w)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: SetCanaryWeight error = %v, want one wrapping %v", tc.name, err, tc.want)
		}
		t.Logf("%s: %v", tc.name, err)
	}
	for name, rv := range rvs {
		if got := e.resourceVersion(name); got != rv {
			t.Errorf("VirtualService %s was written: resourceVersion %s -> %s", name, rv, got)
		}
	}
}

// TestSetCanaryWeightNeverOverwritesAHandEdit: with from given, a live
// weight serin did not set is left alone and the call says why.
func TestSetCanaryWeightNeverOverwritesAHandEdit(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", richVS)
	tgt := subsetTarget(e, "primary")
	if err := e.router.SetCanaryWeight(e.ctx, tgt, 10, 0); err != nil {
		t.Fatalf("SetCanaryWeight(10 from 0): %v", err)
	}
	if err := e.router.SetCanaryWeight(e.ctx, tgt, 30); err != nil { // a person's edit
		t.Fatalf("SetCanaryWeight(30): %v", err)
	}
	rv := e.resourceVersion("checkout")
	err := e.router.SetCanaryWeight(e.ctx, tgt, 25, 10, 25)
	if !errors.Is(err, rollout.ErrDrift) || !strings.Contains(err.Error(), "canary weight is 30") {
		t.Fatalf("SetCanaryWeight(25 from 10 or 25) = %v, want ErrDrift naming weight 30", err)
	}
	if got := e.resourceVersion("checkout"); got != rv {
		t.Fatalf("the hand edit was overwritten: resourceVersion %s -> %s", rv, got)
	}
	if w, err := e.router.CanaryWeight(e.ctx, tgt); err != nil || w != 30 {
		t.Fatalf("CanaryWeight = %d, %v; want 30", w, err)
	}
}
