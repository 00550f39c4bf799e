package istioadapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	apisec "istio.io/api/security/v1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/serin-dev/serin/rollout"
)

// Preflight checks, with reads only, that the mesh is ready for a rollout
// of t. Failures: the target is malformed (Check "Target"), the
// VirtualService does not exist, the route is missing or ambiguous, a
// destination is missing or the route has one besides stable and canary,
// and in subset mode no DestinationRule in the namespace defines both
// subsets for the host. Warning: mTLS is not STRICT namespace-wide, by a
// PeerAuthentication in t's namespace or in the mesh root namespace. The
// error is only for failures to ask the API server.
//
// With a cache (Options.Cache) the checks read it, and a report that
// fails, or warns about mTLS, is made again from the API server before it
// is returned (see read.go): a cache a moment behind never fails a
// rollout.
func (r *Router) Preflight(ctx context.Context, t rollout.Target) (rollout.PreflightReport, error) {
	if r.cache == nil {
		return r.preflight(ctx, t, false)
	}
	rep, err := r.preflight(ctx, t, true)
	if err == nil && (!rep.OK() || (len(rep.Warnings) > 0 && r.confirmMTLS(t.Namespace, time.Now()))) {
		return r.preflight(ctx, t, false)
	}
	return rep, err
}

// preflight runs the checks of Preflight, reading the cache when cached is
// true and the API server otherwise.
func (r *Router) preflight(ctx context.Context, t rollout.Target, cached bool) (rollout.PreflightReport, error) {
	rep := rollout.PreflightReport{Resolved: t}
	if err := validateTarget(t); err != nil {
		return failReport(rep, err), nil
	}
	vs, err := r.virtualService(ctx, t.Namespace, t.VirtualService, cached)
	switch {
	case apierrors.IsNotFound(err):
		rep.Failures = append(rep.Failures, rollout.Finding{Check: "VirtualService",
			Message: fmt.Sprintf("VirtualService %s/%s does not exist", t.Namespace, t.VirtualService)})
		return rep, nil
	case err != nil:
		return rep, fmt.Errorf("preflight: get VirtualService %s/%s: %w", t.Namespace, t.VirtualService, err)
	}
	res, err := resolveRoute(vs, t)
	if res.Name != "" {
		rep.Resolved.Route, rep.Resolved.Host = res.Name, res.Host
		if t.HostMode() && res.Host == "" {
			// Host mode has no destination host of its own: the service is
			// the one clients call, the VirtualService's first host.
			rep.Resolved.Host = calledHost(vs)
		}
	}
	if err != nil {
		return failReport(rep, err), nil
	}
	return rep, r.meshChecks(ctx, vs, res, t, cached, &rep)
}

// meshChecks runs, on a route that resolved, the checks of the mesh
// around it: its hosts, its subsets and their pods, mTLS against the
// DestinationRule's TLS settings, and sidecar injection.
func (r *Router) meshChecks(ctx context.Context, vs *netv1.VirtualService, res resolved, t rollout.Target, cached bool, rep *rollout.PreflightReport) error {
	f, svc, err := r.checkHosts(ctx, vs, res, cached)
	if err != nil {
		return err
	}
	rep.Failures = append(rep.Failures, f...)
	var dr *netv1.DestinationRule
	if host := cmp.Or(res.Host, t.Host); !t.HostMode() && host != "" {
		var f []rollout.Finding
		f, dr, err = r.checkSubsets(ctx, vs, host, t, cached)
		if err != nil {
			return err
		}
		rep.Failures = append(rep.Failures, f...)
		if dr != nil {
			rep.StableVersion = subsetVersion(dr, t.StableSubset)
			rep.CanaryVersion = subsetVersion(dr, t.CanarySubset)
		}
	}
	if dr != nil && svc != nil {
		f, err := r.checkSubsetPods(ctx, dr, svc, t, cached)
		if err != nil {
			return err
		}
		rep.Failures = append(rep.Failures, f...)
	}
	w, mode, pa, err := r.checkMTLS(ctx, t.Namespace, cached)
	if err != nil {
		return err
	}
	rep.Warnings = append(rep.Warnings, w...)
	if dr != nil && svc != nil {
		// Only a Service in the mesh has sidecars that PeerAuthentication
		// governs; TLS to a ServiceEntry's external host is its own affair.
		rep.Failures = append(rep.Failures, checkTLS(dr, mode, pa)...)
	}
	w, err = r.checkInjection(ctx, t.Namespace, cached)
	if err != nil {
		return err
	}
	rep.Warnings = append(rep.Warnings, w...)
	return nil
}

// failReport records a resolution error as a failure of its check.
func failReport(rep rollout.PreflightReport, err error) rollout.PreflightReport {
	check := checkRoute
	var re *resolveError
	if errors.As(err, &re) {
		check = re.check
	}
	rep.Failures = append(rep.Failures, rollout.Finding{Check: check, Message: err.Error()})
	return rep
}

// checkSubsets looks for a DestinationRule in vs's namespace whose host is
// host and which defines both of t's subsets, and returns it. Otherwise it
// returns one failure that names every DestinationRule it looked at and
// what each lacks.
func (r *Router) checkSubsets(ctx context.Context, vs *netv1.VirtualService, host string, t rollout.Target, cached bool) ([]rollout.Finding, *netv1.DestinationRule, error) {
	items, err := r.destinationRulesFor(ctx, vs.Namespace, host, cached)
	if err != nil {
		return nil, nil, fmt.Errorf("preflight: list DestinationRules in namespace %s: %w", vs.Namespace, err)
	}
	var looked []string
	for _, dr := range items {
		missing := missingSubsets(dr.Spec.GetSubsets(), t.StableSubset, t.CanarySubset)
		if len(missing) == 0 {
			return nil, dr, nil
		}
		looked = append(looked, fmt.Sprintf("DestinationRule %s/%s (host %q) defines no subset %s (subsets: %s)",
			dr.Namespace, dr.Name, dr.Spec.GetHost(), strings.Join(missing, " or "), subsetNames(dr.Spec.GetSubsets())))
	}
	var msg string
	if len(looked) > 0 {
		sort.Strings(looked)
		msg = strings.Join(looked, "; ")
	} else {
		// None for the host: name those there are, read in full only
		// on this path.
		all, err := r.destinationRules(ctx, vs.Namespace, cached)
		if err != nil {
			return nil, nil, fmt.Errorf("preflight: list DestinationRules in namespace %s: %w", vs.Namespace, err)
		}
		msg = fmt.Sprintf("no DestinationRule in namespace %s has host %q (DestinationRules there: %s); subsets %q and %q are undefined",
			vs.Namespace, host, drNames(all), t.StableSubset, t.CanarySubset)
	}
	return []rollout.Finding{finding("DestinationRule", CodeReferencedResourceNotFound,
		"referenced host+subset in destinationrule not found: %s+%s, %s+%s: %s", host, t.StableSubset, host, t.CanarySubset, msg)}, nil, nil
}

// subsetVersion is the "version" label of the named subset, which is what
// Istio's metrics report as destination_version; a subset without one is
// known by its name.
func subsetVersion(dr *netv1.DestinationRule, subset string) string {
	for _, s := range dr.Spec.GetSubsets() {
		if s.GetName() == subset {
			if v := s.GetLabels()["version"]; v != "" {
				return v
			}
		}
	}
	return subset
}

type subsetLike interface{ GetName() string }

func missingSubsets[S subsetLike](subsets []S, want ...string) []string {
	var missing []string
	for _, w := range want {
		found := false
		for _, s := range subsets {
			found = found || s.GetName() == w
		}
		if !found {
			missing = append(missing, strconv.Quote(w))
		}
	}
	return missing
}

func subsetNames[S subsetLike](subsets []S) string {
	if len(subsets) == 0 {
		return "none"
	}
	names := make([]string, 0, len(subsets))
	for _, s := range subsets {
		names = append(names, strconv.Quote(s.GetName()))
	}
	return strings.Join(names, ", ")
}

func drNames(items []*netv1.DestinationRule) string {
	if len(items) == 0 {
		return "none"
	}
	names := make([]string, 0, len(items))
	for _, dr := range items {
		names = append(names, fmt.Sprintf("%s (host %q)", dr.Name, dr.Spec.GetHost()))
	}
	return strings.Join(names, ", ")
}

// checkMTLS warns unless workloads in ns get STRICT mTLS from a
// namespace-wide PeerAuthentication (one without a selector): the one in
// ns if it sets a mode, else the one in the mesh root namespace, as Istio
// resolves them.
func (r *Router) checkMTLS(ctx context.Context, ns string, cached bool) ([]rollout.Finding, apisec.PeerAuthentication_MutualTLS_Mode, string, error) {
	nsMode, nsName, err := r.namespaceWideMTLS(ctx, ns, cached)
	if err != nil {
		return nil, 0, "", err
	}
	if nsMode != apisec.PeerAuthentication_MutualTLS_UNSET {
		if nsMode == apisec.PeerAuthentication_MutualTLS_STRICT {
			return nil, nsMode, ns + "/" + nsName, nil
		}
		return []rollout.Finding{{Check: "PeerAuthentication", Message: fmt.Sprintf(
			"PeerAuthentication %s/%s sets mTLS mode %s for namespace %s, not STRICT; traffic to the canary may bypass mTLS",
			ns, nsName, nsMode, ns)}}, nsMode, ns + "/" + nsName, nil
	}
	rootMode, rootName, err := r.namespaceWideMTLS(ctx, r.rootNS, cached)
	if err != nil {
		return nil, 0, "", err
	}
	if rootMode == apisec.PeerAuthentication_MutualTLS_STRICT {
		return nil, rootMode, r.rootNS + "/" + rootName, nil
	}
	return []rollout.Finding{{Check: "PeerAuthentication", Message: fmt.Sprintf(
		"no namespace-wide PeerAuthentication with mTLS mode STRICT in namespace %s or in the mesh root namespace %s; the mesh may accept plaintext traffic",
		ns, r.rootNS)}}, rootMode, r.rootNS + "/" + rootName, nil
}

// namespaceWideMTLS returns the mTLS mode, and the object's name, of the
// PeerAuthentication without a selector in ns; UNSET when there is none.
// Istio honours only the oldest such object, so this does too.
func (r *Router) namespaceWideMTLS(ctx context.Context, ns string, cached bool) (apisec.PeerAuthentication_MutualTLS_Mode, string, error) {
	items, err := r.peerAuthentications(ctx, ns, cached)
	if err != nil {
		return 0, "", fmt.Errorf("preflight: list PeerAuthentications in namespace %s: %w", ns, err)
	}
	var oldest *secv1.PeerAuthentication
	for _, pa := range items {
		if len(pa.Spec.GetSelector().GetMatchLabels()) > 0 {
			continue
		}
		if oldest == nil || pa.CreationTimestamp.Before(&oldest.CreationTimestamp) {
			oldest = pa
		}
	}
	if oldest == nil {
		return apisec.PeerAuthentication_MutualTLS_UNSET, "", nil
	}
	return oldest.Spec.GetMtls().GetMode(), oldest.Name, nil
}

// calledHost is the first host of vs that names one service (not a
// wildcard), or "".
func calledHost(vs *netv1.VirtualService) string {
	for _, h := range vs.Spec.GetHosts() {
		if !strings.Contains(h, "*") {
			return h
		}
	}
	return ""
}
