package meshsim

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Service names of the demo application.
const (
	Frontend  = "frontend"
	Checkout  = "checkout"
	Payments  = "payments"
	Inventory = "inventory"
)

// clusterDomain is the Kubernetes cluster domain of every simulated host.
const clusterDomain = "svc.cluster.local"

// clusterName is what Istio reports in source_cluster and
// destination_cluster for a single-cluster mesh.
const clusterName = "Kubernetes"

// unknown is the value Istio reports for a peer it cannot identify.
const unknown = "unknown"

// workload is one Deployment of one version of a demo service, with the pod
// labels app=<app>, version=<version> and the service account <app>.
type workload struct {
	app       string
	version   string
	namespace string
}

// name is the workload (Deployment) name, as Kubernetes names it: app-version.
func (w *workload) name() string { return w.app + "-" + w.version }

// principal is the SPIFFE identity the workload's sidecar would present.
func (w *workload) principal() string {
	return "spiffe://cluster.local/ns/" + w.namespace + "/sa/" + w.app
}

// labels are the pod labels that VirtualService sourceLabels match against.
func (w *workload) labels() map[string]string {
	return map[string]string{"app": w.app, "version": w.version}
}

// hostInfo is one Kubernetes Service: the app it selects and, for
// Flagger-style per-version services, the one version it selects.
type hostInfo struct {
	name    string // short Service name, e.g. checkout-canary
	app     string
	version string // "" selects the app's default version
}

// call is one downstream request a service makes per inbound request.
type call struct {
	host string // short Service name
	path string
}

// serviceSpec describes one demo service.
type serviceSpec struct {
	app      string
	versions []string // the first is the default when nothing routes by version
	route    string   // the inbound path, also the span's http.route
	calls    []call
}

// demoServices is the demo application: frontend → checkout → payments and
// checkout → inventory, with checkout v2 as the canary.
var demoServices = []serviceSpec{
	{app: Frontend, versions: []string{"v1"}, route: "/", calls: []call{{host: Checkout, path: "/checkout"}}},
	{app: Checkout, versions: []string{"v1", "v2"}, route: "/checkout",
		calls: []call{{host: Payments, path: "/pay"}, {host: Inventory, path: "/reserve"}}},
	{app: Payments, versions: []string{"v1"}, route: "/pay"},
	{app: Inventory, versions: []string{"v1"}, route: "/reserve"},
}

// catalog is the simulated cluster content of one namespace: workloads,
// Services and the call graph. It is immutable after newCatalog.
type catalog struct {
	namespace string
	services  map[string]serviceSpec // by app
	workloads map[string]*workload   // by workload name
	hosts     map[string]hostInfo    // by FQDN
}

// newCatalog builds the demo catalog in namespace ns. Besides one Service per
// app it has the Flagger-style hosts checkout-primary (v1) and
// checkout-canary (v2).
func newCatalog(ns string) *catalog {
	c := &catalog{
		namespace: ns,
		services:  map[string]serviceSpec{},
		workloads: map[string]*workload{},
		hosts:     map[string]hostInfo{},
	}
	for _, s := range demoServices {
		c.services[s.app] = s
		c.addHost(hostInfo{name: s.app, app: s.app})
		for _, v := range s.versions {
			w := &workload{app: s.app, version: v, namespace: ns}
			c.workloads[w.name()] = w
		}
	}
	c.addHost(hostInfo{name: Checkout + "-primary", app: Checkout, version: "v1"})
	c.addHost(hostInfo{name: Checkout + "-canary", app: Checkout, version: "v2"})
	return c
}

// addHost registers h under its FQDN.
func (c *catalog) addHost(h hostInfo) {
	c.hosts[fqdn(h.name, c.namespace)] = h
}

// workloadFor returns the workload of app at version, or an error naming
// both when there is none.
func (c *catalog) workloadFor(app, version string) (*workload, error) {
	w, ok := c.workloads[app+"-"+version]
	if !ok {
		return nil, fmt.Errorf("no workload %s-%s in namespace %s (have %s)",
			app, version, c.namespace, strings.Join(c.workloadNames(), ", "))
	}
	return w, nil
}

// workloadNames lists the workload names, sorted.
func (c *catalog) workloadNames() []string {
	names := make([]string, 0, len(c.workloads))
	for n := range c.workloads {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// defaultVersion is the version a host selects when no VirtualService picks
// one: the host's own version, else the app's first version.
func (c *catalog) defaultVersion(h hostInfo) string {
	if h.version != "" {
		return h.version
	}
	return c.services[h.app].versions[0]
}

// hasVersion reports whether app has a workload at version.
func (c *catalog) hasVersion(app, version string) bool {
	return slices.Contains(c.services[app].versions, version)
}

// fqdn expands a host name the way Istio resolves short names in a
// VirtualService or DestinationRule: a name without a dot is a Service in
// namespace ns; anything with a dot or a wildcard is taken as written.
func fqdn(host, ns string) string {
	if host == "" || strings.Contains(host, ".") || strings.Contains(host, "*") {
		return host
	}
	return host + "." + ns + "." + clusterDomain
}

// hostMatches reports whether the VirtualService host pattern (already
// expanded with fqdn) matches the FQDN host: exactly, as "*", or as a
// "*.suffix" wildcard.
func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	default:
		return pattern == host
	}
}
