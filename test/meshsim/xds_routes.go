package meshsim

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// The conversion of what istiod sends (an Envoy RouteConfiguration) into the
// routing a simulated sidecar does. Envoy's forwarding is simulated here;
// its configuration is Istio's own. Anything in a route that would change
// which cluster a request goes to and that is not simulated is refused, so
// that the proxy NACKs it as an Envoy without that feature would, instead of
// routing differently from a real one.

// errUnsupported marks route configuration the simulator cannot follow.
var errUnsupported = errors.New("not simulated")

// xdsRoutes is one RouteConfiguration, converted: immutable once built.
type xdsRoutes struct {
	name       string
	vhosts     []xdsVHost
	ignorePort bool // ignore_port_in_host_matching, which Istio sets
}

// xdsVHost is one VirtualHost: the domains it serves and its routes, in
// order.
type xdsVHost struct {
	name    string
	domains []string // lower case
	routes  []xdsRoute
}

// xdsRoute is one Route: it applies when its match holds, and sends the
// request to one of dests by weight. A route with no dests (a redirect or a
// direct response) is named by action.
type xdsRoute struct {
	name    string
	path    pathMatch
	headers []headerMatch
	query   []queryMatch
	dests   []destination
	action  string // "redirect" or "direct_response" when dests is empty
}

// pathMatch is a RouteMatch's path specifier.
type pathMatch struct {
	kind          string // "prefix", "path", "regex" or "separated"
	value         string
	re            *regexp.Regexp
	caseSensitive bool
}

// headerMatch is one HeaderMatcher; the pseudo-headers :method, :authority,
// :scheme and :path name the request's own.
type headerMatch struct {
	name           string // lower case
	present        *bool  // present_match
	str            *stringMatcher
	invert         bool
	missingAsEmpty bool
}

// queryMatch is one QueryParameterMatcher.
type queryMatch struct {
	name string
	str  *stringMatcher // nil: present_match
}

// stringMatcher is Envoy's StringMatcher.
type stringMatcher struct {
	kind       string // "exact", "prefix", "suffix", "contains" or "regex"
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

// convertRouteConfig converts one RouteConfiguration. An error names the
// virtual host and route that cannot be followed.
func convertRouteConfig(rc *routev3.RouteConfiguration) (*xdsRoutes, error) {
	out := &xdsRoutes{name: rc.GetName(), ignorePort: rc.GetIgnorePortInHostMatching()}
	for _, vh := range rc.GetVirtualHosts() {
		v := xdsVHost{name: vh.GetName()}
		for _, d := range vh.GetDomains() {
			v.domains = append(v.domains, strings.ToLower(d))
		}
		for i, r := range vh.GetRoutes() {
			c, err := convertRoute(r)
			if err != nil {
				return nil, fmt.Errorf("route config %q virtual host %q route %d (%q): %w", rc.GetName(), vh.GetName(), i, r.GetName(), err)
			}
			v.routes = append(v.routes, c)
		}
		out.vhosts = append(out.vhosts, v)
	}
	return out, nil
}

// convertRoute converts one Route's match and action.
func convertRoute(r *routev3.Route) (xdsRoute, error) {
	out := xdsRoute{name: r.GetName()}
	m := r.GetMatch()
	var err error
	if out.path, err = convertPath(m); err != nil {
		return xdsRoute{}, err
	}
	if m.GetGrpc() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 || m.GetRuntimeFraction() != nil ||
		len(m.GetFilterState()) > 0 {
		return xdsRoute{}, fmt.Errorf("match on grpc, TLS, metadata, runtime or filter state: %w", errUnsupported)
	}
	for _, h := range m.GetHeaders() {
		hm, err := convertHeader(h)
		if err != nil {
			return xdsRoute{}, fmt.Errorf("header %q: %w", h.GetName(), err)
		}
		out.headers = append(out.headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm := queryMatch{name: q.GetName()}
		if q.GetStringMatch() != nil {
			if qm.str, err = convertStringMatcher(q.GetStringMatch()); err != nil {
				return xdsRoute{}, fmt.Errorf("query parameter %q: %w", q.GetName(), err)
			}
		}
		out.query = append(out.query, qm)
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if out.dests, err = convertClusters(a.Route); err != nil {
			return xdsRoute{}, err
		}
	case *routev3.Route_Redirect:
		out.action = "redirect"
	case *routev3.Route_DirectResponse:
		out.action = "direct_response"
	default:
		return xdsRoute{}, fmt.Errorf("route action %T: %w", a, errUnsupported)
	}
	return out, nil
}

// convertPath converts a RouteMatch's path specifier. Envoy matches
// case-sensitively unless case_sensitive is false, which it ignores for
// safe_regex.
func convertPath(m *routev3.RouteMatch) (pathMatch, error) {
	p := pathMatch{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		p.kind, p.value = "prefix", ps.Prefix
	case *routev3.RouteMatch_Path:
		p.kind, p.value = "path", ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		p.kind, p.value = "separated", ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := fullRegexp(ps.SafeRegex.GetRegex(), false)
		if err != nil {
			return p, err
		}
		p.kind, p.re, p.caseSensitive = "regex", re, true
	default:
		return p, fmt.Errorf("path specifier %T: %w", ps, errUnsupported)
	}
	if !p.caseSensitive {
		p.value = strings.ToLower(p.value)
	}
	return p, nil
}

// convertHeader converts one HeaderMatcher.
func convertHeader(h *routev3.HeaderMatcher) (headerMatch, error) {
	out := headerMatch{name: strings.ToLower(h.GetName()), invert: h.GetInvertMatch(), missingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		present := s.PresentMatch
		out.present = &present
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := convertStringMatcher(s.StringMatch)
		if err != nil {
			return out, err
		}
		out.str = sm
	case *routev3.HeaderMatcher_ExactMatch:
		out.str = &stringMatcher{kind: "exact", value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.str = &stringMatcher{kind: "prefix", value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.str = &stringMatcher{kind: "suffix", value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.str = &stringMatcher{kind: "contains", value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := fullRegexp(s.SafeRegexMatch.GetRegex(), false)
		if err != nil {
			return out, err
		}
		out.str = &stringMatcher{kind: "regex", re: re}
	case nil:
		present := true // no specifier: Envoy matches on presence
		out.present = &present
	default:
		return out, fmt.Errorf("header match %T: %w", s, errUnsupported)
	}
	return out, nil
}

// convertStringMatcher converts a StringMatcher.
func convertStringMatcher(m *matcherv3.StringMatcher) (*stringMatcher, error) {
	out := &stringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = "exact", p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = "prefix", p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = "suffix", p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = "contains", p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := fullRegexp(p.SafeRegex.GetRegex(), false) // Envoy ignores ignore_case for a regex
		if err != nil {
			return nil, err
		}
		out.kind, out.re = "regex", re
	default:
		return nil, fmt.Errorf("string match %T: %w", p, errUnsupported)
	}
	if out.ignoreCase {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// fullRegexp compiles an RE2 regex that must match the whole value, as
// Envoy's safe_regex does.
func fullRegexp(expr string, ignoreCase bool) (*regexp.Regexp, error) {
	flags := ""
	if ignoreCase {
		flags = "(?i)"
	}
	re, err := regexp.Compile(flags + "^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return re, nil
}

// convertClusters converts a RouteAction's cluster or weighted clusters
// into weighted destinations; the cluster name gives the host and subset.
func convertClusters(a *routev3.RouteAction) ([]destination, error) {
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		return []destination{clusterDestination(c.Cluster, 1)}, nil
	case *routev3.RouteAction_WeightedClusters:
		var out []destination
		for _, wc := range c.WeightedClusters.GetClusters() {
			if wc.GetName() == "" {
				return nil, fmt.Errorf("weighted cluster by header %q: %w", wc.GetClusterHeader(), errUnsupported)
			}
			w := wc.GetWeight().GetValue()
			if w > 1<<30 {
				return nil, fmt.Errorf("weighted cluster %q weight %d is too large", wc.GetName(), w)
			}
			out = append(out, clusterDestination(wc.GetName(), int32(w)))
		}
		if len(out) == 0 {
			return nil, errors.New("weighted_clusters lists no cluster")
		}
		return out, nil
	default:
		return nil, fmt.Errorf("cluster specifier %T: %w", c, errUnsupported)
	}
}

// clusterDestination is the destination of the Istio cluster name, e.g.
// outbound|80|v2|checkout.shop.svc.cluster.local (host and subset), or
// outbound|80||checkout-canary.shop.svc.cluster.local (host mode). Other
// clusters (PassthroughCluster, BlackHoleCluster) keep only their name.
func clusterDestination(name string, weight int32) destination {
	d := destination{cluster: name, weight: weight}
	parts := strings.Split(name, "|")
	if len(parts) == 4 && parts[0] == "outbound" {
		d.subset, d.host = parts[2], parts[3]
	}
	return d
}

// WeightedCluster is one cluster a route sends a share of its requests to,
// as istiod configured it.
type WeightedCluster struct {
	// Route is the route's name, or "#<index>" for an unnamed one.
	Route string `json:"route"`
	// Cluster is the Envoy cluster, e.g. outbound|80|v2|checkout.shop.svc.cluster.local.
	Cluster string `json:"cluster"`
	// Host and Subset are read from the cluster name ("" when it is not an
	// outbound cluster, or has no subset).
	Host   string `json:"host"`
	Subset string `json:"subset,omitempty"`
	// Weight is the cluster's weight; a single cluster has weight 1.
	Weight int32 `json:"weight"`
}

// weightedClusters lists, by host (the virtual host's first domain, its
// FQDN in Istio's output), the clusters of every route, in route order.
func (t *xdsRoutes) weightedClusters() map[string][]WeightedCluster {
	out := map[string][]WeightedCluster{}
	for _, vh := range t.vhosts {
		host := vh.name
		if len(vh.domains) > 0 {
			host = vh.domains[0]
		}
		for i, r := range vh.routes {
			name := r.name
			if name == "" {
				name = "#" + strconv.Itoa(i)
			}
			for _, d := range r.dests {
				out[host] = append(out[host], WeightedCluster{Route: name, Cluster: d.cluster, Host: d.host, Subset: d.subset, Weight: d.weight})
			}
		}
	}
	return out
}

// hosts lists the domains of t, sorted, for error messages.
func (t *xdsRoutes) hosts() []string {
	var out []string
	for _, vh := range t.vhosts {
		if len(vh.domains) > 0 {
			out = append(out, vh.domains[0])
		}
	}
	sort.Strings(out)
	return out
}
