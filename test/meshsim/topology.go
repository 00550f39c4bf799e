package meshsim

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/serin-dev/serin/test/stack"
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

// workload is one simulated workload: one version of one demo app.
//
// A workload of the static catalog has the pod labels app=<app>,
// version=<version> and the service account <app>, and is named
// <app>-<version>. A Deployment workload (dep set; see kubelet.go) is one pod
// template of one Deployment: it is named after the Deployment, its labels
// are the template's, and it carries the state of that template's pods. A
// Deployment in the middle of a rolling update is two such workloads with
// the same name, one per template. Either is immutable once published.
type workload struct {
	app       string
	version   string // the version label; "" when a Deployment's pods have none
	namespace string
	dep       *deployed // nil for the static catalog
}

// deployed is what a Deployment workload has beyond its app and version.
type deployed struct {
	name           string            // the Deployment
	hash           string            // the pod-template-hash of the template
	labels         map[string]string // the template's labels
	serviceAccount string
	behaviour      Fault // from the meshsim.serin.dev/behaviour annotation
	ready          int32 // ready pods of this template
}

// name is the workload name, as Istio reports it: the Deployment's name
// (app-version for the static catalog).
func (w *workload) name() string {
	if w.dep != nil {
		return w.dep.name
	}
	return w.app + "-" + w.version
}

// key identifies the workload among every one the simulator has served:
// the name for the static catalog, name/hash for a Deployment's template.
func (w *workload) key() string {
	if w.dep != nil {
		return w.dep.name + "/" + w.dep.hash
	}
	return w.name()
}

// principal is the SPIFFE identity the workload's sidecar would present:
// that of its pods' service account.
func (w *workload) principal() string {
	sa := w.app
	if w.dep != nil {
		sa = w.dep.serviceAccount
	}
	return "spiffe://cluster.local/ns/" + w.namespace + "/sa/" + sa
}

// labels are the pod labels that VirtualService sourceLabels and
// DestinationRule subsets match against.
func (w *workload) labels() map[string]string {
	if w.dep != nil {
		return w.dep.labels
	}
	return map[string]string{"app": w.app, "version": w.version, // and what injection adds, as on the stand-in Pods
		"security.istio.io/tlsMode": "istio", stack.LabelCanonicalName: w.app, stack.LabelCanonicalRevision: w.version}
}

// versionLabel is the version Istio reports (source_version,
// destination_version): the version label, else "unknown".
func (w *workload) versionLabel() string {
	if w.version == "" {
		return unknown
	}
	return w.version
}

// canonicalService is Istio's canonical service of the workload (see
// stack.CanonicalName); for the static catalog, the app.
func (w *workload) canonicalService() string { return stack.CanonicalName(w.labels(), w.name()) }

// canonicalRevision is Istio's canonical revision of the workload (see
// stack.CanonicalRevision); for the static catalog, the version.
func (w *workload) canonicalRevision() string { return stack.CanonicalRevision(w.labels()) }

// behaviour is the Fault its pod template asks for (zero for the static
// catalog).
func (w *workload) behaviour() Fault {
	if w.dep == nil {
		return Fault{}
	}
	return w.dep.behaviour
}

// ready is the number of ready pods serving the workload; a static
// workload always has its one.
func (w *workload) ready() int32 {
	if w.dep == nil {
		return 1
	}
	return w.dep.ready
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
