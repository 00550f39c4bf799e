package istioadapter

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout"
)

const (
	drBoth = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: checkout}
spec:
  host: checkout.$NS.svc.cluster.local
  subsets:
  - {name: stable, labels: {version: v1}}
  - {name: canary, labels: {version: v2}}`
	drStableOnly = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: checkout-dr}
spec:
  host: checkout
  subsets:
  - {name: stable, labels: {version: v1}}`
	paStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: STRICT}`
	paPermissive = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: PERMISSIVE}`
	paStrictSelector = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: checkout-only}
spec:
  selector: {matchLabels: {app: checkout}}
  mtls: {mode: STRICT}`
	// unnamedVS has one unnamed route split between stable and canary.
	unnamedVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: checkout}
spec:
  hosts: [checkout]
  http:
  - match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: admin}}]
  - route:
    - {destination: {host: checkout, subset: stable}, weight: 100}
    - {destination: {host: checkout, subset: canary}}`
)

// TestPreflightFailures checks that each broken setup is a failure of the
// right check with a message naming the object, and that nothing is written.
func TestPreflightFailures(t *testing.T) {
	tests := []struct {
		name    string
		objects string // in the test's namespace, besides richVS
		tgt     func(rollout.Target) rollout.Target
		check   string
		message string // "$NS" is the test's namespace
	}{
		{name: "missing VirtualService", objects: drBoth,
			tgt:     func(t rollout.Target) rollout.Target { t.VirtualService = "nope"; return t },
			check:   "VirtualService",
			message: `VirtualService $NS/nope does not exist`},
		{name: "missing route", objects: drBoth,
			tgt:     func(t rollout.Target) rollout.Target { t.Route = "main"; return t },
			check:   "Route",
			message: `VirtualService $NS/checkout has no http route named "main" (routes: "debug" -> checkout/stable; "primary" -> `},
		{name: "missing destination", objects: drBoth,
			tgt:     func(t rollout.Target) rollout.Target { t.Route = "debug"; return t },
			check:   "Destinations",
			message: `VirtualService $NS/checkout route "debug" has no canary destination "checkout" subset "canary" (destinations: checkout/stable)`},
		{name: "missing DestinationRule subset", objects: drStableOnly,
			check:   "DestinationRule",
			message: `DestinationRule $NS/checkout-dr (host "checkout") defines no subset "canary" (subsets: "stable")`},
		{name: "no DestinationRule for the host",
			check:   "DestinationRule",
			message: `no DestinationRule in namespace $NS has host "checkout" (DestinationRules there: none); subsets "stable" and "canary" are undefined`},
		{name: "malformed target", objects: drBoth,
			tgt:     func(t rollout.Target) rollout.Target { t.StableHost = "checkout-primary"; return t },
			check:   "Target",
			message: `sets both hosts and subsets`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.apply("", richVS)
			if tc.objects != "" {
				e.apply("", tc.objects)
			}
			e.apply("", paStrict)
			rv := e.resourceVersion("checkout")
			tgt := subsetTarget(e, "primary")
			if tc.tgt != nil {
				tgt = tc.tgt(tgt)
			}
			rep, err := e.router.Preflight(e.ctx, tgt)
			if err != nil {
				t.Fatalf("Preflight: %v", err)
			}
			want := strings.ReplaceAll(tc.message, "$NS", e.ns)
			if len(rep.Failures) != 1 || rep.Failures[0].Check != tc.check || !strings.Contains(rep.Failures[0].Message, want) {
				t.Fatalf("failures %+v\nwant one %s failure containing %q", rep.Failures, tc.check, want)
			}
			if len(rep.Warnings) != 0 {
				t.Fatalf("warnings %+v, want none", rep.Warnings)
			}
			if got := e.resourceVersion("checkout"); got != rv {
				t.Fatalf("Preflight wrote: resourceVersion %s -> %s", rv, got)
			}
		})
	}
}

func TestPreflightAmbiguousRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", richVS+"\n---\n"+drBoth)
	vs, err := e.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Give "debug" a canary too: now two routes carry both destinations.
	vs.Spec.Http[0].Route = append(vs.Spec.Http[0].Route, dest("checkout", "canary", 0))
	if _, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rv := e.resourceVersion("checkout")
	rep, err := e.router.Preflight(e.ctx, subsetTarget(e, ""))
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	want := `VirtualService ` + e.ns + `/checkout has 2 http routes with both the stable (subset "stable") and the canary (subset "canary") destination ("debug" -> `
	if len(rep.Failures) != 1 || rep.Failures[0].Check != "Route" || !strings.Contains(rep.Failures[0].Message, want) {
		t.Fatalf("failures %+v\nwant one Route failure containing %q", rep.Failures, want)
	}
	if got := e.resourceVersion("checkout"); got != rv {
		t.Fatalf("Preflight wrote: resourceVersion %s -> %s", rv, got)
	}
}

// TestPreflightMTLS checks the PeerAuthentication warning: none when a
// namespace-wide STRICT policy covers the namespace, from the namespace or
// the mesh root, and one otherwise.
func TestPreflightMTLS(t *testing.T) {
	tests := []struct {
		name       string
		ns, root   string // PeerAuthentications in the namespace and in the mesh root
		wantWarned bool
	}{
		{name: "STRICT in the namespace", ns: paStrict},
		{name: "STRICT only in the mesh root", root: paStrict},
		{name: "none", wantWarned: true},
		{name: "STRICT only for a workload", ns: paStrictSelector, wantWarned: true},
		{name: "namespace PERMISSIVE overrides STRICT mesh root", ns: paPermissive, root: paStrict, wantWarned: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.apply("", richVS+"\n---\n"+drBoth)
			if tc.ns != "" {
				e.apply("", tc.ns)
			}
			if tc.root != "" {
				e.apply(e.rootNS, tc.root)
			}
			rep, err := e.router.Preflight(e.ctx, subsetTarget(e, ""))
			if err != nil {
				t.Fatalf("Preflight: %v", err)
			}
			if !rep.OK() {
				t.Fatalf("failures %+v, want none", rep.Failures)
			}
			if rep.Resolved.Route != "primary" || rep.Resolved.Host != "checkout" {
				t.Fatalf("Resolved = %+v, want route primary, host checkout", rep.Resolved)
			}
			if !tc.wantWarned {
				if len(rep.Warnings) != 0 {
					t.Fatalf("warnings %+v, want none", rep.Warnings)
				}
				return
			}
			if len(rep.Warnings) != 1 || rep.Warnings[0].Check != "PeerAuthentication" {
				t.Fatalf("warnings %+v, want one PeerAuthentication warning", rep.Warnings)
			}
			msg := rep.Warnings[0].Message
			if !strings.Contains(msg, e.ns) || (tc.ns == "" && !strings.Contains(msg, e.rootNS)) {
				t.Fatalf("warning %q does not say where it looked (%s, %s)", msg, e.ns, e.rootNS)
			}
			t.Log(msg)
		})
	}
}

// TestUnnamedRoute checks the http[N] convention end to end: Preflight
// reports it, and it addresses the route for reads and writes.
func TestUnnamedRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("", unnamedVS+"\n---\n"+drBoth+"\n---\n"+paStrict)
	rep, err := e.router.Preflight(e.ctx, subsetTarget(e, ""))
	if err != nil || !rep.OK() || len(rep.Warnings) != 0 {
		t.Fatalf("Preflight = %+v, %v; want a clean report", rep, err)
	}
	if rep.Resolved.Route != "http[1]" {
		t.Fatalf("Resolved.Route = %q, want http[1]", rep.Resolved.Route)
	}
	if err := e.router.SetCanaryWeight(e.ctx, rep.Resolved, 5); err != nil {
		t.Fatalf("SetCanaryWeight(5) on %s: %v", rep.Resolved, err)
	}
	if got, err := e.router.CanaryWeight(e.ctx, rep.Resolved); err != nil || got != 5 {
		t.Fatalf("CanaryWeight = %d, %v; want 5", got, err)
	}
}
