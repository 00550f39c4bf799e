package istioadapter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	apinet "istio.io/api/networking/v1"
	apisec "istio.io/api/security/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/test/stack"
)

// The differential test: serin's preflight and Istio's own analyzers
// (istioctl analyze, built from the istio.io/istio version LOCAL-STACK.md
// pins) judge the same generated meshes, and must agree on every shape,
// except where serin disagrees on purpose; each such case is named in
// shape.expected and asserted, not skipped.

// differentialShapes is how many meshes are generated, each in its own
// namespace.
const differentialShapes = 240

// shape is one generated mesh around a VirtualService "checkout" whose
// route "primary" splits between subsets stable and canary.
type shape struct {
	i         int
	host      string // serviceOK, serviceMissing, serviceHidden, service2Ports, service2PortsNamed, entryExact, entryWildcard, entryHidden
	dr        string // drBoth, drNoCanary, drNone
	pods      string // podsBoth, podsNoCanary, podsCanaryOutside
	tls       string // "", ISTIO_MUTUAL, DISABLE
	injected  bool
	extra     bool // a second route to a host nothing defines
	delegate  bool // the VirtualService has no hosts (a delegate)
	namespace string
}

func generateShapes(rng *rand.Rand, n int) []shape {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	out := make([]shape, n)
	for i := range out {
		out[i] = shape{i: i,
			host:     pick("serviceOK", "serviceOK", "serviceMissing", "serviceHidden", "service2Ports", "service2PortsNamed", "entryExact", "entryWildcard", "entryHidden"),
			dr:       pick("drBoth", "drBoth", "drNoCanary", "drNone"),
			pods:     pick("podsBoth", "podsBoth", "podsNoCanary", "podsCanaryOutside"),
			tls:      pick("", "", "ISTIO_MUTUAL", "DISABLE"),
			injected: rng.IntN(4) != 0,
			extra:    rng.IntN(5) == 0,
			delegate: rng.IntN(6) == 0,
		}
	}
	return out
}

// entry reports whether the destination host is a ServiceEntry's.
func (s shape) entry() bool { return strings.HasPrefix(s.host, "entry") }

// visibleService reports whether the destination host is a Service the
// VirtualService's namespace sees.
func (s shape) visibleService() bool {
	return !s.entry() && s.host != "serviceMissing" && s.host != "serviceHidden"
}

// dest is the destination host of the managed route: a Service's short
// name, or a ServiceEntry's host, unique to the shape so that shapes never
// see each other's mesh-wide objects.
func (s shape) dest() string {
	if s.entry() {
		return fmt.Sprintf("api.s%d.example.com", s.i)
	}
	return "checkout"
}

// version is the value of the version label of a subset, unique to the
// shape: Istio's subset analyzer looks for pods in every namespace.
func (s shape) version(subset string) string { return fmt.Sprintf("%s-s%d", subset, s.i) }

// expected are the codes each side should report for s, given what the
// analyzers report: the cases where serin disagrees on purpose are taken
// out of (or put into) istioctl's set, with the reason.
func (s shape) expected(istio []string) (want []string) {
	for _, c := range istio {
		switch {
		case c == "IST0101/host" && s.extra:
			// The second route is not serin's: it judges only the route it
			// manages. (The managed route's own missing host is reported by
			// both; the set holds the code once either way.)
			if s.host != "serviceMissing" && s.host != "serviceHidden" && s.host != "entryHidden" {
				continue
			}
		case c == "IST0173" && !s.visibleService():
			// serin checks subset pods behind a Service it can see only.
			continue
		}
		want = append(want, c)
	}
	if s.pods == "podsCanaryOutside" && s.dr == "drBoth" && s.visibleService() {
		// A pod with the canary's labels that the Service does not select
		// gets none of its traffic: serin fails the subset, Istio (which
		// looks for the labels alone) does not.
		want = append(want, "IST0173")
	}
	if s.tls == "DISABLE" && s.dr == "drBoth" && s.visibleService() {
		// Istio retired IST0113 (auto-mTLS); serin keeps it, because an
		// explicit TLS mode overrides auto-mTLS and plaintext to STRICT
		// sidecars is refused.
		want = append(want, "IST0113")
	}
	slices.Sort(want)
	return slices.Compact(want)
}

// TestPreflightAgreesWithIstioctlAnalyze generates differentialShapes
// meshes, runs istioctl analyze over all of them once, and compares, per
// shape, the analyzer codes it reports for the rollout's VirtualService,
// DestinationRule and namespace with the codes of serin's preflight.
func TestPreflightAgreesWithIstioctlAnalyze(t *testing.T) {
	e := newEnv(t, nil)
	shapes := generateShapes(rand.New(rand.NewPCG(12, 2026)), differentialShapes)
	for i := range shapes {
		shapes[i].namespace = fmt.Sprintf("%s-d%d", e.ns, i)
		build(e, shapes[i])
	}
	msgs, err := st.Analyze(e.ctx)
	if err != nil {
		t.Fatalf("istioctl analyze: %v", err)
	}
	agree, onPurpose, judged := 0, 0, 0
	for _, s := range shapes {
		istio := istioCodes(msgs, s.namespace)
		if len(istio) > 0 {
			judged++
		}
		want := s.expected(istio)
		tgt := rollout.Target{Namespace: s.namespace, VirtualService: "checkout", Route: "primary", StableSubset: "stable", CanarySubset: "canary"}
		rep, err := e.router.Preflight(e.ctx, tgt)
		if err != nil {
			t.Fatalf("shape %+v: Preflight: %v", s, err)
		}
		got := serinCodes(rep)
		if !slices.Equal(got, want) {
			t.Errorf("shape %d %+v:\n  serin     %v\n  istioctl  %v\n  expected  %v\n  serin's findings %+v %+v",
				s.i, s, got, istio, want, rep.Failures, rep.Warnings)
			continue
		}
		agree++
		if !slices.Equal(want, istio) {
			onPurpose++
		}
	}
	if judged < len(shapes)/4 {
		t.Errorf("istioctl analyze found something in only %d of %d shapes: the generator no longer tests much", judged, len(shapes))
	}
	t.Logf("%d shapes (%d with findings): serin and istioctl analyze agree on %d, %d of them with a documented, asserted difference", len(shapes), judged, agree, onPurpose)
}

// istioCodes are the analyzer codes reported about the shape's
// VirtualService, DestinationRule and Namespace, among those serin's
// preflight speaks, IST0101 split into its host and host+subset forms.
func istioCodes(msgs []stack.Message, ns string) []string {
	var out []string
	for _, m := range msgs {
		if !m.About(ns) {
			continue
		}
		switch m.Code {
		case CodeReferencedResourceNotFound:
			if strings.Contains(m.Message, "host+subset") {
				out = append(out, "IST0101/subset")
			} else {
				out = append(out, "IST0101/host")
			}
		case CodeNamespaceNotInjected, CodePortSelectorRequired, CodeSubsetSelectsNoPods:
			out = append(out, m.Code)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// serinCodes are the codes of serin's findings, in the same form.
func serinCodes(rep rollout.PreflightReport) []string {
	var out []string
	for _, f := range append(slices.Clone(rep.Failures), rep.Warnings...) {
		switch {
		case f.Code == CodeReferencedResourceNotFound && f.Check == "DestinationRule":
			out = append(out, "IST0101/subset")
		case f.Code == CodeReferencedResourceNotFound:
			out = append(out, "IST0101/host")
		case f.Code != "":
			out = append(out, f.Code)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// build creates the shape's namespace and objects on the API server.
func build(e *env, s shape) {
	e.t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}
	if s.injected {
		ns.Labels = map[string]string{"istio-injection": "enabled"}
	}
	_, err := e.kube.CoreV1().Namespaces().Create(e.ctx, ns, metav1.CreateOptions{})
	must(e, err)
	_, err = e.kube.CoreV1().ServiceAccounts(s.namespace).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	must(e, err)
	buildHost(e, s)
	buildPods(e, s)
	buildRules(e, s)
}

// buildHost creates the Service or ServiceEntry of the destination host.
func buildHost(e *env, s shape) {
	e.t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "checkout"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	switch s.host {
	case "serviceMissing":
		return
	case "serviceHidden":
		svc.Annotations = map[string]string{exportToAnnotation: "elsewhere"}
	case "service2Ports", "service2PortsNamed":
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "http-admin", Port: 8081})
	case "entryExact", "entryWildcard", "entryHidden":
		se := &netv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "api"}}
		se.Spec.Hosts = []string{s.dest()}
		if s.host == "entryWildcard" {
			se.Spec.Hosts = []string{fmt.Sprintf("*.s%d.example.com", s.i)}
		}
		if s.host == "entryHidden" {
			se.Spec.ExportTo = []string{"elsewhere"}
		}
		se.Spec.Ports = []*apinet.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}}
		se.Spec.Resolution = apinet.ServiceEntry_DNS
		_, err := e.istio.NetworkingV1().ServiceEntries(s.namespace).Create(e.ctx, se, metav1.CreateOptions{})
		must(e, err)
		return
	}
	_, err := e.kube.CoreV1().Services(s.namespace).Create(e.ctx, svc, metav1.CreateOptions{})
	must(e, err)
}

// buildPods creates the stable pod and, as the shape says, the canary's.
// They carry the sidecar injection adds, so that the analyzers do not
// report a missing proxy.
func buildPods(e *env, s shape) {
	e.t.Helper()
	pods := map[string]map[string]string{"stable": {"app": "checkout", "version": s.version("stable")}}
	switch s.pods {
	case "podsBoth":
		pods["canary"] = map[string]string{"app": "checkout", "version": s.version("canary")}
	case "podsCanaryOutside":
		pods["canary"] = map[string]string{"app": "other", "version": s.version("canary")}
	}
	for name, l := range pods {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l,
			Annotations: map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "stand-in"}, {Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.31.0"}}}}
		_, err := e.kube.CoreV1().Pods(s.namespace).Create(e.ctx, p, metav1.CreateOptions{})
		must(e, err)
	}
}

// buildRules creates the VirtualService, the DestinationRule and a STRICT
// PeerAuthentication.
func buildRules(e *env, s shape) {
	e.t.Helper()
	dest := func(subset string) *apinet.Destination {
		d := &apinet.Destination{Host: s.dest(), Subset: subset}
		if s.host == "service2PortsNamed" {
			d.Port = &apinet.PortSelector{Number: 80}
		}
		return d
	}
	vs := &netv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "checkout"}}
	if !s.delegate {
		vs.Spec.Hosts = []string{s.dest()}
	}
	vs.Spec.Http = []*apinet.HTTPRoute{{Name: "primary", Route: []*apinet.HTTPRouteDestination{
		{Destination: dest("stable"), Weight: 100}, {Destination: dest("canary")}}}}
	if s.extra {
		vs.Spec.Http = append([]*apinet.HTTPRoute{{Name: "legacy", Match: []*apinet.HTTPMatchRequest{{Uri: &apinet.StringMatch{MatchType: &apinet.StringMatch_Prefix{Prefix: "/old"}}}},
			Route: []*apinet.HTTPRouteDestination{{Destination: &apinet.Destination{Host: "nowhere"}}}}}, vs.Spec.Http...)
	}
	_, err := e.istio.NetworkingV1().VirtualServices(s.namespace).Create(e.ctx, vs, metav1.CreateOptions{})
	must(e, err)
	if s.dr != "drNone" {
		dr := &netv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "checkout"}}
		dr.Spec.Host = s.dest()
		dr.Spec.Subsets = []*apinet.Subset{{Name: "stable", Labels: map[string]string{"version": s.version("stable")}}}
		if s.dr == "drBoth" {
			dr.Spec.Subsets = append(dr.Spec.Subsets, &apinet.Subset{Name: "canary", Labels: map[string]string{"version": s.version("canary")}})
		}
		if s.tls != "" {
			mode := map[string]apinet.ClientTLSSettings_TLSmode{"DISABLE": apinet.ClientTLSSettings_DISABLE, "ISTIO_MUTUAL": apinet.ClientTLSSettings_ISTIO_MUTUAL}[s.tls]
			dr.Spec.TrafficPolicy = &apinet.TrafficPolicy{Tls: &apinet.ClientTLSSettings{Mode: mode}}
		}
		_, err := e.istio.NetworkingV1().DestinationRules(s.namespace).Create(e.ctx, dr, metav1.CreateOptions{})
		must(e, err)
	}
	pa := &secv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	pa.Spec.Mtls = &apisec.PeerAuthentication_MutualTLS{Mode: apisec.PeerAuthentication_MutualTLS_STRICT}
	_, err = e.istio.SecurityV1().PeerAuthentications(s.namespace).Create(e.ctx, pa, metav1.CreateOptions{})
	must(e, err)
}
