package meshsim

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// errNoEndpoint means no workload of the app has pod labels that a
// destination selects.
var errNoEndpoint = errors.New("no pod matches")

// topology is an immutable snapshot of the Deployment workloads, by app.
// The kubelet stand-in swaps a new one into the router whenever a
// Deployment or one of its pods changes. An app with no entry is served by
// the static catalog.
type topology struct {
	byApp map[string][]*workload // sorted by key
}

// newTopology indexes ws by app, in key order so that picks are
// reproducible.
func newTopology(ws []*workload) *topology {
	t := &topology{byApp: map[string][]*workload{}}
	for _, w := range ws {
		t.byApp[w.app] = append(t.byApp[w.app], w)
	}
	for _, list := range t.byApp {
		sort.Slice(list, func(i, j int) bool { return list[i].key() < list[j].key() })
	}
	return t
}

// workloads returns every workload of the snapshot.
func (t *topology) workloads() []*workload {
	var out []*workload
	for _, ws := range t.byApp {
		out = append(out, ws...)
	}
	return out
}

// selectWorkloads returns the workloads of ws whose pod labels include sel,
// as a DestinationRule subset (or a Service selector) selects pods.
func selectWorkloads(ws []*workload, sel map[string]string) []*workload {
	var out []*workload
	for _, w := range ws {
		if labelsInclude(w.labels(), sel) {
			out = append(out, w)
		}
	}
	return out
}

// pickReady chooses, among the workloads of ws that sel selects, one with
// ready pods, with a probability in proportion to its ready pods, as Envoy
// balances over a cluster's healthy endpoints; u draws uniformly in [0,1).
// When the selected workloads have no ready pod it returns their names
// (sorted, without repeats) and an error; when none is selected, no names
// and an error wrapping errNoEndpoint.
func pickReady(ws []*workload, sel map[string]string, u func() float64) (*workload, []string, error) {
	chosen := selectWorkloads(ws, sel)
	if len(chosen) == 0 {
		return nil, nil, fmt.Errorf("%w labels %v", errNoEndpoint, sel)
	}
	var total int64
	for _, w := range chosen {
		total += int64(max(w.ready(), 0))
	}
	if total == 0 {
		names := unreadyNames(chosen)
		return nil, names, fmt.Errorf("workloads %s have no ready pod", strings.Join(names, ", "))
	}
	x := int64(u() * float64(total))
	for _, w := range chosen {
		if x < int64(max(w.ready(), 0)) {
			return w, nil, nil
		}
		x -= int64(max(w.ready(), 0))
	}
	for i := len(chosen) - 1; ; i-- { // only if rounding carried x past the end
		if chosen[i].ready() > 0 {
			return chosen[i], nil, nil
		}
	}
}

// unreadyNames returns the sorted distinct workload names of ws.
func unreadyNames(ws []*workload) []string {
	var names []string
	for _, w := range ws {
		if n := w.name(); len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
