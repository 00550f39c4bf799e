package meshsim

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	apiv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// buildTable converts VirtualServices and DestinationRules into a routeTable.
// Objects that a sidecar would ignore (VirtualServices bound only to
// gateways) are left out; objects that Istio would reject (a bad regex) are
// left out and reported in the returned errors, the rest still apply.
func buildTable(vss []*networkingv1.VirtualService, drs []*networkingv1.DestinationRule) (*routeTable, []error) {
	var errs []error
	t := &routeTable{subsets: map[string]map[string]map[string]string{}}
	for _, vs := range oldestFirst(vss) {
		if !appliesToMesh(vs.Spec.GetGateways()) {
			continue
		}
		r, err := convertVS(vs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.vss = append(t.vss, r)
	}
	for _, dr := range oldestFirst(drs) {
		host := fqdn(dr.Spec.GetHost(), dr.Namespace)
		if _, seen := t.subsets[host]; seen {
			continue // like Istio, the oldest DestinationRule for a host wins
		}
		subsets := map[string]map[string]string{}
		for _, s := range dr.Spec.GetSubsets() {
			subsets[s.GetName()] = s.GetLabels()
		}
		t.subsets[host] = subsets
	}
	return t, errs
}

// oldestFirst sorts by creation time, then namespace and name, which is how
// Istio breaks ties between resources for the same host.
func oldestFirst[T interface {
	*networkingv1.VirtualService | *networkingv1.DestinationRule
}](in []T) []T {
	out := slices.Clone(in)
	key := func(o T) (int64, string) {
		switch v := any(o).(type) {
		case *networkingv1.VirtualService:
			return v.CreationTimestamp.UnixNano(), v.Namespace + "/" + v.Name
		case *networkingv1.DestinationRule:
			return v.CreationTimestamp.UnixNano(), v.Namespace + "/" + v.Name
		}
		return 0, ""
	}
	sort.SliceStable(out, func(i, j int) bool {
		ti, ni := key(out[i])
		tj, nj := key(out[j])
		if ti != tj {
			return ti < tj
		}
		return ni < nj
	})
	return out
}

// appliesToMesh reports whether a gateways list includes sidecars: an empty
// list means "mesh", otherwise "mesh" must be named.
func appliesToMesh(gateways []string) bool {
	return len(gateways) == 0 || slices.Contains(gateways, "mesh")
}

// convertVS converts one VirtualService's hosts and http routes.
func convertVS(vs *networkingv1.VirtualService) (vsRoutes, error) {
	out := vsRoutes{namespace: vs.Namespace, name: vs.Name}
	for _, h := range vs.Spec.GetHosts() {
		out.hosts = append(out.hosts, fqdn(h, vs.Namespace))
	}
	for i, hr := range vs.Spec.GetHttp() {
		r := httpRoute{name: hr.GetName()}
		for _, m := range hr.GetMatch() {
			c, err := convertMatch(m)
			if err != nil {
				return vsRoutes{}, fmt.Errorf("VirtualService %s/%s http[%d]: %w", vs.Namespace, vs.Name, i, err)
			}
			r.match = append(r.match, c)
		}
		for _, d := range hr.GetRoute() {
			r.dests = append(r.dests, destination{
				host:   fqdn(d.GetDestination().GetHost(), vs.Namespace),
				subset: d.GetDestination().GetSubset(),
				weight: d.GetWeight(),
			})
		}
		out.http = append(out.http, r)
	}
	return out, nil
}

// convertMatch converts one HTTPMatchRequest.
func convertMatch(m *apiv1alpha3.HTTPMatchRequest) (matchCond, error) {
	c := matchCond{
		ignoreURICase: m.GetIgnoreUriCase(),
		sourceLabels:  m.GetSourceLabels(),
		sourceNS:      m.GetSourceNamespace(),
		port:          m.GetPort(),
		notForMesh:    !appliesToMesh(m.GetGateways()),
	}
	var err error
	single := []struct {
		dst  **strMatch
		src  *apiv1alpha3.StringMatch
		what string
	}{
		{&c.uri, m.GetUri(), "uri"}, {&c.method, m.GetMethod(), "method"},
		{&c.authority, m.GetAuthority(), "authority"}, {&c.scheme, m.GetScheme(), "scheme"},
	}
	for _, s := range single {
		if s.src == nil {
			continue
		}
		sm, err := convertString(s.src, c.ignoreURICase && s.what == "uri")
		if err != nil {
			return matchCond{}, fmt.Errorf("match %s: %w", s.what, err)
		}
		*s.dst = &sm
	}
	if c.headers, err = convertMap(m.GetHeaders(), true); err != nil {
		return matchCond{}, fmt.Errorf("match headers: %w", err)
	}
	if c.withoutHeaders, err = convertMap(m.GetWithoutHeaders(), true); err != nil {
		return matchCond{}, fmt.Errorf("match withoutHeaders: %w", err)
	}
	if c.queryParams, err = convertMap(m.GetQueryParams(), false); err != nil {
		return matchCond{}, fmt.Errorf("match queryParams: %w", err)
	}
	return c, nil
}

// convertMap converts a map of StringMatch, lower-casing the keys when they
// are header names.
func convertMap(in map[string]*apiv1alpha3.StringMatch, lowerKeys bool) (map[string]strMatch, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]strMatch, len(in))
	for k, v := range in {
		sm, err := convertString(v, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if lowerKeys {
			k = strings.ToLower(k)
		}
		out[k] = sm
	}
	return out, nil
}

// convertString converts a StringMatch. Istio regexes are RE2 and must match
// the whole value, so they are anchored here.
func convertString(in *apiv1alpha3.StringMatch, lower bool) (strMatch, error) {
	if in == nil {
		return strMatch{}, nil
	}
	var out strMatch
	switch v := in.GetMatchType().(type) {
	case *apiv1alpha3.StringMatch_Exact:
		s := v.Exact
		if lower {
			s = strings.ToLower(s)
		}
		out.exact = &s
	case *apiv1alpha3.StringMatch_Prefix:
		s := v.Prefix
		if lower {
			s = strings.ToLower(s)
		}
		out.prefix = &s
	case *apiv1alpha3.StringMatch_Regex:
		flags := ""
		if lower {
			flags = "(?i)"
		}
		re, err := regexp.Compile(flags + "^(?:" + v.Regex + ")$")
		if err != nil {
			return strMatch{}, fmt.Errorf("regex %q: %w", v.Regex, err)
		}
		out.re = re
	}
	return out, nil
}
