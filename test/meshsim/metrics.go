package meshsim

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reporter values of Istio's standard metrics.
const (
	reporterSource      = "source"
	reporterDestination = "destination"
)

// istioDurationBuckets are the default buckets, in milliseconds, of Istio's
// istio_request_duration_milliseconds.
var istioDurationBuckets = []float64{
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
	30000, 60000, 300000, 600000, 1800000, 3600000,
}

// istioLabels are the labels of Istio's standard request metrics, in the
// order hop.labelValues returns them.
var istioLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_app", "source_version",
	"source_canonical_service", "source_canonical_revision", "source_principal", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_principal",
	"destination_cluster",
	"request_protocol", "response_code", "response_flags", "connection_security_policy",
}

// metrics holds the Istio-style metrics of every simulated sidecar, and a
// few of meshsim's own, in a private registry.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	asyncDropped prometheus.Counter
	loadDropped  prometheus.Counter
	unready      *prometheus.CounterVec
	xdsPushes    *prometheus.CounterVec
}

// newMetrics creates and registers the metrics.
func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests, as an Istio sidecar reports them (simulated by meshsim).",
		}, istioLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Request duration in milliseconds, as an Istio sidecar reports it (simulated by meshsim).",
			Buckets: istioDurationBuckets,
		}, istioLabels),
		asyncDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshsim_async_calls_dropped_total",
			Help: "Amplified downstream calls not made because the bound on background calls was reached.",
		}),
		loadDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshsim_loadgen_dropped_total",
			Help: "Load-generator requests not sent because the bound on requests in flight was reached.",
		}),
		unready: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshsim_unready_requests_total",
			Help: "Requests routed to workloads none of whose pods was ready, answered 503 UH (no healthy upstream).",
		}, []string{"namespace", "workload"}),
	}
	m.xdsPushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshsim_xds_pushes_total",
		Help: "xDS responses from istiod received by the simulated sidecars, by type (cds, eds, lds, rds) and result (accepted, rejected: NACKed, held: frozen).",
	}, []string{"namespace", "workload", "type", "result"})
	m.reg.MustRegister(m.requests, m.duration, m.asyncDropped, m.loadDropped, m.unready, m.xdsPushes)
	return m
}

// hop is one request on one hop, as one reporter saw it.
type hop struct {
	reporter string
	ns       string    // namespace of the destination Service
	src      *workload // nil: a peer outside the mesh
	dst      *workload // nil: routing failed before a workload was chosen
	dstHost  string    // destination_service (FQDN)
	dstName  string    // destination_service_name
	code     int
	flags    string // Envoy response flags, "-" for none
}

// record counts h and observes its duration d.
func (m *metrics) record(h hop, d time.Duration) {
	lv := h.labelValues()
	m.requests.WithLabelValues(lv...).Inc()
	m.duration.WithLabelValues(lv...).Observe(float64(d) / float64(time.Millisecond))
}

// labelValues returns the values of istioLabels for h. Unknown peers read
// "unknown", as in Istio. connection_security_policy is "unknown" at the
// source reporter (Envoy cannot tell there), "mutual_tls" at the destination
// for a mesh peer and "none" for a plaintext peer from outside the mesh.
func (h hop) labelValues() []string {
	src := peerLabels(h.src)
	dst := peerLabels(h.dst)
	policy := unknown
	if h.reporter == reporterDestination {
		policy = "none"
		if h.src != nil {
			policy = "mutual_tls"
		}
	}
	flags := h.flags
	if flags == "" {
		flags = "-"
	}
	return []string{
		h.reporter,
		src.workload, src.ns, src.app, src.version, src.canonicalService, src.canonicalRevision, src.principal, src.cluster,
		dst.workload, dst.ns, dst.app, dst.version,
		h.dstHost, h.dstName, h.ns,
		dst.canonicalService, dst.canonicalRevision, dst.principal, dst.cluster,
		"http", strconv.Itoa(h.code), flags, policy,
	}
}

// peer is the label values describing one side of a hop.
type peer struct {
	workload, ns, app, version, canonicalService, canonicalRevision, principal, cluster string
}

// peerLabels describes w, or an unknown peer when w is nil. A Deployment
// workload is named after its Deployment, its version is its version label
// ("unknown" without one), and its canonical service and revision follow
// Istio's rule (see stack.CanonicalName and stack.CanonicalRevision); for
// the static catalog they are the app and the version.
func peerLabels(w *workload) peer {
	if w == nil {
		return peer{unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown}
	}
	return peer{w.name(), w.namespace, w.app, w.versionLabel(), w.canonicalService(), w.canonicalRevision(),
		w.principal(), clusterName}
}
