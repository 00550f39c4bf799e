package meshsim

import (
	"net"
	"strings"
)

// How a simulated sidecar matches a request against the routes from
// istiod, as Envoy does: the virtual host by domain, then the first route
// whose path, headers and query parameters match.

// findVHost returns the virtual host for the Host header host, as Envoy
// picks it: an exact domain first, then the longest "*.suffix" wildcard,
// then the longest "prefix.*" wildcard, then "*". It returns nil when none
// matches.
func (t *xdsRoutes) findVHost(host string) *xdsVHost {
	host = strings.ToLower(host)
	if t.ignorePort {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	var best *xdsVHost
	bestRank, bestLen := 0, -1
	for i := range t.vhosts {
		for _, d := range t.vhosts[i].domains {
			rank, n := domainRank(d, host)
			if rank > bestRank || (rank == bestRank && rank > 0 && n > bestLen) {
				best, bestRank, bestLen = &t.vhosts[i], rank, n
			}
		}
	}
	return best
}

// domainRank is how well domain d matches host: 4 exact, 3 a suffix
// wildcard, 2 a prefix wildcard, 1 "*", 0 not at all; n is the length of
// the wildcard's fixed part, longer winning.
func domainRank(d, host string) (rank, n int) {
	switch {
	case d == host:
		return 4, len(d)
	case d == "*":
		return 1, 0
	case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
		return 3, len(d) - 1
	case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
		return 2, len(d) - 1
	}
	return 0, 0
}

// firstRoute returns the index of the first route of vh that matches r,
// or -1.
func (vh *xdsVHost) firstRoute(r *request) int {
	for i := range vh.routes {
		if vh.routes[i].matches(r) {
			return i
		}
	}
	return -1
}

// matches reports whether r satisfies the route's path, headers and query
// parameters.
func (rt *xdsRoute) matches(r *request) bool {
	if !rt.path.matches(r) {
		return false
	}
	for _, h := range rt.headers {
		if !h.matches(r) {
			return false
		}
	}
	for _, q := range rt.query {
		if !q.matches(r) {
			return false
		}
	}
	return true
}

// matches applies the path specifier to r's path, with the query string for
// a prefix (as Envoy matches :path) and without it otherwise.
func (p pathMatch) matches(r *request) bool {
	path := r.path
	if p.kind == "regex" {
		return p.re.MatchString(path)
	}
	if p.kind == "prefix" && len(r.query) > 0 {
		path += "?" + r.query.Encode()
	}
	if !p.caseSensitive {
		path = strings.ToLower(path)
	}
	switch p.kind {
	case "prefix":
		return strings.HasPrefix(path, p.value)
	case "path":
		return path == p.value
	case "separated":
		return path == p.value || strings.HasPrefix(path, strings.TrimSuffix(p.value, "/")+"/")
	}
	return false
}

// headerValue returns r's value of header name (lower case), with the
// pseudo-headers Envoy matches on, and whether it is present. Several values
// are joined with ",", as Envoy does.
func headerValue(r *request, name string) (string, bool) {
	switch name {
	case ":method":
		return r.method, true
	case ":authority":
		return r.host, true
	case ":scheme":
		return "http", true
	case ":path":
		if len(r.query) > 0 {
			return r.path + "?" + r.query.Encode(), true
		}
		return r.path, true
	}
	var vals []string
	for k, v := range r.header {
		if strings.EqualFold(k, name) {
			vals = append(vals, v...)
		}
	}
	if len(vals) == 0 {
		return "", false
	}
	return strings.Join(vals, ","), true
}

// matches applies one header matcher to r: a missing header never matches
// (inverted or not) unless treat_missing_header_as_empty makes it "".
func (h headerMatch) matches(r *request) bool {
	v, ok := headerValue(r, h.name)
	if h.present != nil {
		return (ok == *h.present) != h.invert
	}
	if !ok && !h.missingAsEmpty {
		return false
	}
	return h.str.matches(v) != h.invert
}

// matches applies one query parameter matcher to r.
func (q queryMatch) matches(r *request) bool {
	if !r.query.Has(q.name) {
		return false
	}
	if q.str == nil { // present_match, or no matcher at all: presence is enough
		return true
	}
	return q.str.matches(r.query.Get(q.name))
}

// matches applies the string matcher to v.
func (m *stringMatcher) matches(v string) bool {
	if m.ignoreCase && m.kind != "regex" {
		v = strings.ToLower(v)
	}
	switch m.kind {
	case "exact":
		return v == m.value
	case "prefix":
		return strings.HasPrefix(v, m.value)
	case "suffix":
		return strings.HasSuffix(v, m.value)
	case "contains":
		return strings.Contains(v, m.value)
	case "regex":
		return m.re.MatchString(v)
	}
	return false
}
