package prometheus

import (
	"slices"
	"time"

	"github.com/serin-dev/serin/analysis"
)

// ForgetNamespaceAfter is how long a namespace stays in the scope of the
// shared queries after the last Inbound or Hops call about a target in it.
// Rollouts are analysed every few seconds, so a namespace not asked about
// for this long has no rollout under analysis any more; forgetting it
// sooner would only cost a few extra queries when its next rollout starts,
// forgetting it later only keeps its series in the answers a while longer.
const ForgetNamespaceAfter = 10 * time.Minute

// unscoped stands in the namespace set for a target that cannot be scoped
// to namespaces: one without a Namespace, or a side with Match that does
// not pin destination_workload_namespace (Match replaces the namespace
// matcher, so its series may live anywhere).
const unscoped = ""

// nsSeen is what the Source remembers of one namespace.
type nsSeen struct {
	since time.Time // evaluation time of the first call about it
	last  time.Time // when it was last asked about, by Source.now
}

// scope registers the namespaces of t and returns the namespaces that the
// shared queries evaluated at at select for it, sorted; nil means the
// mesh-wide queries.
//
// A namespace joins the scope for evaluations at least one cache TTL after
// its first call, not at once: the rollouts of a tick run concurrently, and
// if each new namespace changed the scope as it arrived, the callers of one
// tick would send as many different query texts as there are new
// namespaces. Until then (and for a target that cannot be scoped) the
// caller gets the mesh-wide queries, which all such callers share. So every
// caller's query covers its own namespace, and within one tick all callers
// evaluated at the same time use the same scope: the queries per tick do
// not grow with the number of rollouts or namespaces, and only the tick in
// which a namespace appears or joins costs one extra set of queries. Once
// a target that cannot be scoped has joined, everyone gets the mesh-wide
// queries until it is forgotten.
//
// A namespace's first call is dated by its evaluation time, unless that
// is a reading of the past (at least one TTL before now, such as a
// rollout's analysis start read again after a controller restart): it is
// then dated now. Dated by the past reading, it would join the scope of
// the current readings at once, and after a restart, when every rollout
// reads its start and then the present, the callers of one tick would
// again send as many query texts as there are new namespaces. A reading of
// the past itself gets the scope as it stood then (the namespaces that had
// joined by its time), so mostly the mesh-wide queries: readings of the
// past are rare, and each has its own time anyway.
func (s *Source) scope(t analysis.Target, at time.Time) []string {
	own := targetNamespaces(t)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ns := range own {
		e, ok := s.namespaces[ns]
		switch {
		case ok:
		case now.Sub(at) >= s.ttl:
			e.since = now
		default:
			e.since = at
		}
		e.last = now
		s.namespaces[ns] = e
	}
	members := map[string]bool{}
	for ns, e := range s.namespaces {
		switch {
		case now.Sub(e.last) > ForgetNamespaceAfter:
			delete(s.namespaces, ns)
		case at.Sub(e.since) >= s.ttl:
			members[ns] = true
		}
	}
	if members[unscoped] {
		return nil
	}
	for _, ns := range own {
		if !members[ns] {
			return nil
		}
	}
	out := make([]string, 0, len(members))
	for ns := range members {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// targetNamespaces returns the namespaces whose series t's sides are
// matched in (see inboundMatchers and callerOf), with unscoped when that
// cannot be told. In host mode the hop series are found by the workloads
// of the inbound series, which are in the same namespaces, so one set
// serves the inbound and the hop queries.
func targetNamespaces(t analysis.Target) []string {
	if t.Namespace == "" {
		return []string{unscoped}
	}
	out := []string{t.Namespace}
	for _, side := range []analysis.Side{t.Canary, t.Stable} {
		if len(side.Match) == 0 {
			continue
		}
		ns, ok := side.Match["destination_workload_namespace"]
		if !ok || ns == "" {
			ns = unscoped
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}
