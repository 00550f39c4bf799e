package meshsim

import (
	"sort"

	"github.com/serin-dev/serin/test/stack"
)

// Workloads returns the Kubernetes side of the demo application that the
// simulator plays: a Service per app, the per-version Services
// checkout-primary (v1) and checkout-canary (v2), and one Pod per workload
// (frontend-v1, checkout-v1, checkout-v2, payments-v1, inventory-v1). The
// simulator itself needs none of them, as it routes by the VirtualServices
// and DestinationRules alone; they are what a real cluster would hold, so
// that Istio's analyzers and istiod see the mesh the simulator stands in
// for. Write them with stack.CreateWorkloads.
func Workloads() stack.Workloads {
	c := newCatalog("")
	var w stack.Workloads
	for _, h := range c.hosts {
		w.Services = append(w.Services, stack.Service{Name: h.name, App: h.app, Version: h.version})
	}
	for _, wl := range c.workloads {
		w.Pods = append(w.Pods, stack.Pod{App: wl.app, Version: wl.version})
	}
	// Sorted, so that Pod IPs and creation order are the same on every run.
	sort.Slice(w.Services, func(i, j int) bool { return w.Services[i].Name < w.Services[j].Name })
	sort.Slice(w.Pods, func(i, j int) bool {
		return w.Pods[i].App+"-"+w.Pods[i].Version < w.Pods[j].App+"-"+w.Pods[j].Version
	})
	return w
}
