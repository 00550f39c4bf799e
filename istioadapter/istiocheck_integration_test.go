package istioadapter

import (
	"cmp"
	"strings"
	"testing"

	apinet "istio.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout"
)

// TestPreflightSpeaksIstio: each mesh mistake Istio's analyzers know is a
// finding with the analyzer's code, on the real API server, and the
// preflight writes nothing.
func TestPreflightSpeaksIstio(t *testing.T) {
	tests := []struct {
		name    string
		vs      string // the VirtualService, richVS when empty
		route   string // the target's route, "primary" when empty
		setup   func(e *env)
		failure bool // a failure, else a warning
		code    string
		message string // "$NS" is the test's namespace
	}{
		{name: "no Service for the host", failure: true, code: CodeReferencedResourceNotFound,
			setup: func(e *env) {
				must(e, e.kube.CoreV1().Services(e.ns).Delete(e.ctx, "checkout", metav1.DeleteOptions{}))
			},
			message: `IST0101 referenced host not found: "checkout" (route "primary" of VirtualService $NS/checkout)`},
		{name: "the Service is not exported to the namespace", failure: true, code: CodeReferencedResourceNotFound,
			setup: func(e *env) {
				svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
				must(e, err)
				svc.Annotations = map[string]string{exportToAnnotation: "elsewhere"}
				_, err = e.kube.CoreV1().Services(e.ns).Update(e.ctx, svc, metav1.UpdateOptions{})
				must(e, err)
			},
			message: `IST0101 referenced host not found: "checkout"`},
		{name: "a Service with two ports and no port on the destination", failure: true, code: CodePortSelectorRequired,
			vs: unnamedVS, route: "http[1]",
			setup: func(e *env) {
				svc, err := e.kube.CoreV1().Services(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
				must(e, err)
				svc.Spec.Ports = append(svc.Spec.Ports, svc.Spec.Ports[0])
				svc.Spec.Ports[1].Name, svc.Spec.Ports[1].Port = "grpc", 9090
				_, err = e.kube.CoreV1().Services(e.ns).Update(e.ctx, svc, metav1.UpdateOptions{})
				must(e, err)
			},
			message: `IST0112 route "http[1]" of VirtualService $NS/checkout sends to "checkout", which exposes 2 ports, without naming one`},
		{name: "the canary subset selects no pods", failure: true, code: CodeSubsetSelectsNoPods,
			setup: func(e *env) {
				must(e, e.kube.CoreV1().Pods(e.ns).Delete(e.ctx, "checkout-v2", metav1.DeleteOptions{}))
				// A pod with the subset's labels that the Service does not
				// select receives none of its traffic.
				e.pod("stray-v2", map[string]string{"app": "other", "version": "v2"})
			},
			message: `IST0173 subset canary of DestinationRule $NS/checkout selects no pods (none in namespace $NS has app=checkout,version=v2)`},
		{name: "DestinationRule TLS DISABLE under STRICT mTLS", failure: true, code: CodeMTLSPolicyConflict,
			setup: func(e *env) {
				dr, err := e.istio.NetworkingV1().DestinationRules(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{})
				must(e, err)
				dr.Spec.TrafficPolicy = &apinet.TrafficPolicy{Tls: &apinet.ClientTLSSettings{Mode: apinet.ClientTLSSettings_DISABLE}}
				_, err = e.istio.NetworkingV1().DestinationRules(e.ns).Update(e.ctx, dr, metav1.UpdateOptions{})
				must(e, err)
			},
			message: `IST0113 DestinationRule $NS/checkout sets TLS mode DISABLE for host checkout.$NS.svc.cluster.local, but PeerAuthentication $NS/default requires mTLS mode STRICT`},
		{name: "namespace not enabled for injection", code: CodeNamespaceNotInjected,
			setup: func(e *env) {
				n, err := e.kube.CoreV1().Namespaces().Get(e.ctx, e.ns, metav1.GetOptions{})
				must(e, err)
				delete(n.Labels, "istio-injection")
				_, err = e.kube.CoreV1().Namespaces().Update(e.ctx, n, metav1.UpdateOptions{})
				must(e, err)
			},
			message: `IST0102 namespace $NS is not enabled for Istio injection`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.apply("", cmp.Or(tc.vs, richVS)+"\n---\n"+drBoth+"\n---\n"+paStrict)
			tc.setup(e)
			rv := e.resourceVersion("checkout")
			rep, err := e.router.Preflight(e.ctx, subsetTarget(e, cmp.Or(tc.route, "primary")))
			if err != nil {
				t.Fatalf("Preflight: %v", err)
			}
			got, other := rep.Warnings, rep.Failures
			if tc.failure {
				got, other = rep.Failures, rep.Warnings
			}
			want := strings.ReplaceAll(tc.message, "$NS", e.ns)
			if len(got) != 1 || got[0].Code != tc.code || !strings.HasPrefix(got[0].Message, want) || len(other) != 0 {
				t.Fatalf("failures %+v\nwarnings %+v\nwant one %s (failure %v) starting %q", rep.Failures, rep.Warnings, tc.code, tc.failure, want)
			}
			if now := e.resourceVersion("checkout"); now != rv {
				t.Errorf("Preflight wrote the VirtualService: resourceVersion %s -> %s", rv, now)
			}
		})
	}
}

// TestPreflightServiceEntryHosts: a host that a ServiceEntry defines,
// exactly or by a wildcard, resolves; one it does not export to the
// namespace does not.
func TestPreflightServiceEntryHosts(t *testing.T) {
	const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  http:
  - name: main
    route:
    - {destination: {host: api-stable.$NS.example.com}, weight: 100}
    - {destination: {host: api-canary.$NS.example.com}}`
	for _, tc := range []struct {
		name, se string
		ok       bool
	}{
		{"exact hosts", `hosts: [api-stable.$NS.example.com, api-canary.$NS.example.com]`, true},
		{"a wildcard host", `hosts: ["*.$NS.example.com"]`, true},
		{"exported elsewhere", "hosts: [api-stable.$NS.example.com, api-canary.$NS.example.com]\n  exportTo: [elsewhere]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.apply("", vs+"\n---\n"+paStrict+`
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  `+tc.se+`
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL`)
			tgt := rollout.Target{Namespace: e.ns, VirtualService: "ext", StableHost: "api-stable." + e.ns + ".example.com", CanaryHost: "api-canary." + e.ns + ".example.com"}
			rep, err := e.router.Preflight(e.ctx, tgt)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() != tc.ok {
				t.Fatalf("Preflight OK = %v, want %v: %+v", rep.OK(), tc.ok, rep.Failures)
			}
			if !tc.ok && (len(rep.Failures) != 2 || rep.Failures[0].Code != CodeReferencedResourceNotFound) {
				t.Fatalf("failures %+v, want IST0101 for both hosts", rep.Failures)
			}
		})
	}
}

func must(e *env, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}
