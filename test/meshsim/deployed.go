package meshsim

import (
	"maps"
	"strings"
	"sync"
)

// publishDeployed makes ws the Deployment workloads: the shared pod
// listener learns them and the router's topology is swapped at once, so the
// next request sees them.
func (s *Sim) publishDeployed(ws []*workload) {
	for _, w := range ws {
		s.deployedByKey.Store(w.key(), w)
	}
	s.router.topo.Store(newTopology(ws))
	s.log.Debug("Deployment workloads published", "workloads", len(ws))
}

// hasDeployed reports whether a current Deployment workload has app and
// version, so that a fault can be set for it.
func (s *Sim) hasDeployed(app, version string) bool {
	for _, w := range s.router.topo.Load().byApp[app] {
		if w.version == version {
			return true
		}
	}
	return false
}

// UnreadyRequests counts the requests routed to workloads none of whose
// pods was ready (answered 503 with response flag UH): the JSON of GET
// /unready.
type UnreadyRequests struct {
	// Total is the number of such requests.
	Total int64 `json:"total"`
	// ByWorkload splits Total by the workloads selected, named as in
	// meshsim_unready_requests_total: a Deployment's name, or several
	// joined with commas when a destination selected several.
	ByWorkload map[string]int64 `json:"byWorkload"`
}

// unreadyCounts is the running count behind UnreadyRequests.
type unreadyCounts struct {
	mu    sync.Mutex
	total int64
	by    map[string]int64
}

// countUnready counts one request to the workloads names, none ready.
func (s *Sim) countUnready(names []string) {
	key := strings.Join(names, ",")
	s.metrics.unready.WithLabelValues(s.cat.namespace, key).Inc()
	s.unready.mu.Lock()
	defer s.unready.mu.Unlock()
	if s.unready.by == nil {
		s.unready.by = map[string]int64{}
	}
	s.unready.total++
	s.unready.by[key]++
}

// UnreadyRequests returns how many requests were routed to workloads with
// no ready pod since Start. An end-to-end test checks that it stays 0 when
// a rollout must drop no request.
func (s *Sim) UnreadyRequests() UnreadyRequests {
	s.unready.mu.Lock()
	defer s.unready.mu.Unlock()
	by := maps.Clone(s.unready.by)
	if by == nil {
		by = map[string]int64{}
	}
	return UnreadyRequests{Total: s.unready.total, ByWorkload: by}
}
