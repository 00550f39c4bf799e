package istioadapter

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apinet "istio.io/api/networking/v1"
	apisec "istio.io/api/security/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/serin-dev/serin/rollout"
)

// The checks in this file speak Istio's language: each is the check one
// of Istio's own analyzers (istioctl analyze) makes, restricted to what
// serin manages (the route's two destinations and the DestinationRule
// that defines their subsets), and each finding carries the analyzer's
// code so that it can be looked up in Istio's documentation. The
// differential test (istiocheck_differential_test.go) compares them with
// istioctl analyze on generated meshes, and names the cases where serin
// disagrees on purpose.
//
// serin calls none of Istio's analyzer code: istio.io/istio is a module of
// several hundred packages (the control plane), far heavier than the
// checks serin needs on every mesh re-check, and its analyzers are built
// to run over a whole snapshot of the cluster, not from informer caches
// for one route.

// Istio analyzer codes serin reports.
const (
	// CodeReferencedResourceNotFound: a destination host, or a host and
	// subset, that nothing in the mesh defines.
	CodeReferencedResourceNotFound = "IST0101"
	// CodeNamespaceNotInjected: the namespace is not enabled for sidecar
	// injection (Info in Istio; a warning for serin, which needs the
	// sidecars' telemetry to judge the canary).
	CodeNamespaceNotInjected = "IST0102"
	// CodePortSelectorRequired: the destination's service has several
	// ports and the destination names none.
	CodePortSelectorRequired = "IST0112"
	// CodeMTLSPolicyConflict: the DestinationRule's TLS mode and the
	// PeerAuthentication's mTLS mode cannot talk to each other. Istio
	// retired this analyzer when auto-mTLS became the default; serin
	// keeps the check (and the code), because a DestinationRule that sets
	// the mode explicitly still overrides auto-mTLS.
	CodeMTLSPolicyConflict = "IST0113"
	// CodeSubsetSelectsNoPods: a subset of the DestinationRule selects no
	// pod: its traffic would get 503 UH (no healthy upstream).
	CodeSubsetSelectsNoPods = "IST0173"
)

// Checks of the findings in this file, as rollout.Finding.Check.
const (
	checkHost      = "Host"
	checkSubset    = "Subset"
	checkInjection = "Injection"
	checkMTLS      = "MTLS"
)

// finding builds a finding that starts with its code.
func finding(check, code, format string, args ...any) rollout.Finding {
	return rollout.Finding{Check: check, Code: code, Message: code + " " + fmt.Sprintf(format, args...)}
}

// istioFQDN completes a destination host as Istio's analyzers do: a name
// without a dot is a Service of the VirtualService's namespace; any other
// name is taken as it is (so "checkout.shop" is not checkout in shop).
func istioFQDN(host, ns string) string {
	if strings.HasPrefix(host, "*") || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc." + clusterDomain
}

// serviceOfFQDN returns the namespace and name of the Kubernetes Service a
// cluster FQDN names, or ok false for any other host.
func serviceOfFQDN(fqdn string) (ns, name string, ok bool) {
	rest, found := strings.CutSuffix(fqdn, ".svc."+clusterDomain)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[1], parts[0], true
}

// scopes are the namespaces a VirtualService in ns with exportTo looks up
// hosts for, as Istio's analyzers do: every namespace ("*"), and its own
// namespace or the ones it exports to.
func scopes(ns string, exportTo []string) []string {
	out := []string{"*"}
	if len(exportTo) == 0 {
		return append(out, ns)
	}
	for _, e := range exportTo {
		if e == "." {
			e = ns
		}
		out = append(out, e)
	}
	return out
}

// visibleIn are the namespaces an object in ns exported to exportTo is
// visible in: every namespace ("*") when exportTo is empty.
func visibleIn(ns string, exportTo []string) []string {
	if len(exportTo) == 0 {
		return []string{"*"}
	}
	out := make([]string, 0, len(exportTo))
	for _, e := range exportTo {
		if e = strings.TrimSpace(e); e == "." {
			e = ns
		}
		out = append(out, e)
	}
	return out
}

// meets reports whether a lookup from scopes sees an object visible in
// visible.
func meets(scopes, visible []string) bool {
	for _, v := range visible {
		if slices.Contains(scopes, v) {
			return true
		}
	}
	return false
}

// destinationService is what a destination host resolves to: a Service,
// or a ServiceEntry, with its ports.
type destinationService struct {
	service *corev1.Service // nil for a ServiceEntry
	ports   int
}

// lookupHost resolves a destination host of vs as Istio's
// DestinationHostAnalyzer does: a visible Service or ServiceEntry with
// that host, then a visible ServiceEntry with a wildcard host that covers
// it. It returns nil when nothing defines the host.
func (r *Router) lookupHost(ctx context.Context, vs *netv1.VirtualService, host string, cached bool) (*destinationService, error) {
	fqdn := istioFQDN(host, vs.Namespace)
	sc := scopes(vs.Namespace, vs.Spec.GetExportTo())
	if ns, name, ok := serviceOfFQDN(fqdn); ok {
		svc, err := r.service(ctx, ns, name, cached)
		if err != nil {
			return nil, err
		}
		if svc != nil && meets(sc, visibleIn(ns, splitExportTo(svc.Annotations[exportToAnnotation]))) {
			return &destinationService{service: svc, ports: len(svc.Spec.Ports)}, nil
		}
	}
	entries, err := r.serviceEntries(ctx, cached)
	if err != nil {
		return nil, err
	}
	var wildcard *destinationService
	for _, se := range entries {
		if !meets(sc, visibleIn(se.Namespace, se.Spec.GetExportTo())) {
			continue
		}
		for _, h := range se.Spec.GetHosts() {
			switch {
			case h == fqdn:
				return &destinationService{ports: len(se.Spec.GetPorts())}, nil
			case strings.HasPrefix(h, "*") && strings.HasSuffix(strings.TrimPrefix(fqdn, "*"), strings.TrimPrefix(h, "*")) && wildcard == nil:
				wildcard = &destinationService{ports: len(se.Spec.GetPorts())}
			}
		}
	}
	return wildcard, nil
}

// exportToAnnotation is the annotation by which a Kubernetes Service
// limits the namespaces it is visible in.
const exportToAnnotation = "networking.istio.io/exportTo"

// splitExportTo splits the exportTo annotation; nil when it is empty.
func splitExportTo(anno string) []string {
	if strings.TrimSpace(anno) == "" {
		return nil
	}
	return strings.Split(anno, ",")
}

// checkHosts checks that each destination of the managed route resolves
// to a Service or ServiceEntry (IST0101) and names a port when that has
// several (IST0112). It returns the Service of the stable destination,
// when it is one, for the subset checks.
func (r *Router) checkHosts(ctx context.Context, vs *netv1.VirtualService, res resolved, cached bool) ([]rollout.Finding, *corev1.Service, error) {
	var out []rollout.Finding
	var stable *corev1.Service
	route := vs.Spec.GetHttp()[res.HTTP]
	seen := map[string]bool{}
	for _, j := range []int{res.Stable, res.Canary} {
		d := route.GetRoute()[j].GetDestination()
		if key := istioFQDN(d.GetHost(), vs.Namespace) + "/" + d.GetPort().String(); seen[key] {
			continue // one finding per host and port
		} else {
			seen[key] = true
		}
		ds, err := r.lookupHost(ctx, vs, d.GetHost(), cached)
		if err != nil {
			return nil, nil, fmt.Errorf("preflight: look up host %q of VirtualService %s/%s: %w", d.GetHost(), vs.Namespace, vs.Name, err)
		}
		if ds == nil {
			out = append(out, finding(checkHost, CodeReferencedResourceNotFound,
				"referenced host not found: %q (route %q of VirtualService %s/%s): no Service or ServiceEntry defines it for namespace %s, so its traffic has nowhere to go",
				d.GetHost(), res.Name, vs.Namespace, vs.Name, vs.Namespace))
			continue
		}
		if ds.ports > 1 && d.GetPort() == nil {
			out = append(out, finding(checkHost, CodePortSelectorRequired,
				"route %q of VirtualService %s/%s sends to %q, which exposes %d ports, without naming one: set destination.port",
				res.Name, vs.Namespace, vs.Name, d.GetHost(), ds.ports))
		}
		if j == res.Stable {
			stable = ds.service
		}
	}
	return out, stable, nil
}

// checkSubsetPods checks that each of the rollout's subsets selects at
// least one pod behind the Service (IST0173). Istio's analyzer looks for a
// pod with the subset's labels anywhere; serin asks for one the Service
// selects too, in the Service's namespace, since only those receive its
// traffic.
func (r *Router) checkSubsetPods(ctx context.Context, dr *netv1.DestinationRule, svc *corev1.Service, t rollout.Target, cached bool) ([]rollout.Finding, error) {
	var out []rollout.Finding
	for _, name := range []string{t.StableSubset, t.CanarySubset} {
		i := slices.IndexFunc(dr.Spec.GetSubsets(), func(s *apinet.Subset) bool { return s.GetName() == name })
		if i < 0 {
			continue // reported by checkSubsets
		}
		set := labels.Merge(svc.Spec.Selector, dr.Spec.GetSubsets()[i].GetLabels())
		n, err := r.countPods(ctx, svc.Namespace, set, svc.Spec.Selector, cached)
		if err != nil {
			return nil, fmt.Errorf("preflight: pods of subset %s of DestinationRule %s/%s: %w", name, dr.Namespace, dr.Name, err)
		}
		if n == 0 {
			out = append(out, finding(checkSubset, CodeSubsetSelectsNoPods,
				"subset %s of DestinationRule %s/%s selects no pods (none in namespace %s has %s): its traffic would get 503 UH (no healthy upstream)",
				name, dr.Namespace, dr.Name, svc.Namespace, set))
		}
	}
	return out, nil
}

// checkInjection warns when ns is not enabled for sidecar injection
// (IST0102), as Istio's injection analyzer does: no istio-injection and
// no istio.io/rev label, and not ambient.
func (r *Router) checkInjection(ctx context.Context, ns string, cached bool) ([]rollout.Finding, error) {
	n, err := r.namespace(ctx, ns, cached)
	if err != nil || n == nil {
		return nil, err
	}
	l := n.Labels
	_, inj := l["istio-injection"]
	_, rev := l["istio.io/rev"]
	if inj || rev || l["istio.io/dataplane-mode"] == "ambient" || ns == "istio-system" {
		return nil, nil
	}
	return []rollout.Finding{finding(checkInjection, CodeNamespaceNotInjected,
		"namespace %s is not enabled for Istio injection (no istio-injection or istio.io/rev label): its workloads may run without sidecars, "+
			"and serin judges the canary by the sidecars' telemetry; run 'kubectl label namespace %s istio-injection=enabled'", ns, ns)}, nil
}

// checkTLS fails when the DestinationRule's explicit TLS mode cannot talk
// to the namespace's mTLS mode (IST0113): a client that sends plaintext,
// or its own TLS, to STRICT sidecars, or Istio mTLS to sidecars with mTLS
// DISABLEd.
func checkTLS(dr *netv1.DestinationRule, mode apisec.PeerAuthentication_MutualTLS_Mode, paName string) []rollout.Finding {
	var out []rollout.Finding
	tls := []*apinet.ClientTLSSettings{dr.Spec.GetTrafficPolicy().GetTls()}
	for _, p := range dr.Spec.GetTrafficPolicy().GetPortLevelSettings() {
		tls = append(tls, p.GetTls())
	}
	for _, s := range dr.Spec.GetSubsets() {
		tls = append(tls, s.GetTrafficPolicy().GetTls())
	}
	for _, t := range tls {
		if t == nil {
			continue
		}
		m := t.GetMode()
		strictConflict := mode == apisec.PeerAuthentication_MutualTLS_STRICT && m != apinet.ClientTLSSettings_ISTIO_MUTUAL
		disableConflict := mode == apisec.PeerAuthentication_MutualTLS_DISABLE && m == apinet.ClientTLSSettings_ISTIO_MUTUAL
		if strictConflict || disableConflict {
			out = append(out, finding(checkMTLS, CodeMTLSPolicyConflict,
				"DestinationRule %s/%s sets TLS mode %s for host %s, but PeerAuthentication %s requires mTLS mode %s: requests would be refused",
				dr.Namespace, dr.Name, m, dr.Spec.GetHost(), paName, mode))
			return out
		}
	}
	return out
}
