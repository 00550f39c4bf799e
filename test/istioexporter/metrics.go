package istioexporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// istioDurationBuckets are the default buckets, in milliseconds, of Istio's
// istio_request_duration_milliseconds.
var istioDurationBuckets = []float64{
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
	30000, 60000, 300000, 600000, 1800000, 3600000,
}

// istioLabels are the labels of Istio's standard request metrics, in the
// order peerPair.values returns them (the same set as test/meshsim's).
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

// Label values that are the same for every series.
const (
	clusterDomain = "svc.cluster.local"
	clusterName   = "Kubernetes" // source_cluster and destination_cluster of a single-cluster mesh
	unknown       = "unknown"
	// The inbound traffic comes from the ingress gateway, as a mesh's
	// north-south traffic does.
	gatewayWorkload  = "istio-ingressgateway"
	gatewayNamespace = "istio-system"
	gatewayAccount   = "istio-ingressgateway-service-account"
)

// metrics are the series of one target (one /metrics listener), in a
// registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests, as an Istio sidecar reports them (synthetic: test/istioexporter).",
		}, istioLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Request duration in milliseconds, as an Istio sidecar reports it (synthetic: test/istioexporter).",
			Buckets: istioDurationBuckets,
		}, istioLabels),
	}
	m.reg.MustRegister(m.requests, m.duration)
	return m
}

// peer is one side of a hop as Istio labels it.
type peer struct {
	workload, namespace, app, version, principal string
}

// workloadPeer is version v of app in namespace ns: the Deployment
// app-v, with service account app.
func workloadPeer(ns, app, v string) peer {
	return peer{workload: app + "-" + v, namespace: ns, app: app, version: v,
		principal: "spiffe://cluster.local/ns/" + ns + "/sa/" + app}
}

// gatewayPeer is the ingress gateway, whose version Istio does not know.
func gatewayPeer() peer {
	return peer{workload: gatewayWorkload, namespace: gatewayNamespace, app: gatewayWorkload, version: unknown,
		principal: "spiffe://cluster.local/ns/" + gatewayNamespace + "/sa/" + gatewayAccount}
}

// series is one hop as one reporter reports it, minus the response code.
type series struct {
	reporter string
	src, dst peer
	// policy is connection_security_policy: mutual_tls at the destination
	// of a STRICT mesh, unknown at the source (Envoy cannot tell there).
	policy string
}

// values returns the values of istioLabels for s with response code code.
// The canonical service and revision are the app and version, as Istio
// derives them without the service.istio.io labels.
func (s series) values(code int) []string {
	return []string{
		s.reporter,
		s.src.workload, s.src.namespace, s.src.app, s.src.version,
		s.src.app, s.src.version, s.src.principal, clusterName,
		s.dst.workload, s.dst.namespace, s.dst.app, s.dst.version,
		fqdn(s.dst.app, s.dst.namespace), s.dst.app, s.dst.namespace,
		s.dst.app, s.dst.version, s.dst.principal, clusterName,
		"http", strconv.Itoa(code), "-", s.policy,
	}
}

// handles are the counter and histogram of one series and response code,
// looked up once: WithLabelValues hashes 24 labels.
type handles struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// codeSeries are the handles of one series by response code, created at
// the code's first request, as Envoy creates its stats lazily.
type codeSeries struct {
	m      *metrics
	s      series
	byCode map[int]handles
}

func newCodeSeries(m *metrics, s series) *codeSeries {
	return &codeSeries{m: m, s: s, byCode: map[int]handles{}}
}

// code returns the handles for response code c, creating its series.
func (cs *codeSeries) code(c int) handles {
	h, ok := cs.byCode[c]
	if !ok {
		lv := cs.s.values(c)
		h = handles{requests: cs.m.requests.WithLabelValues(lv...), duration: cs.m.duration.WithLabelValues(lv...)}
		cs.byCode[c] = h
	}
	return h
}

// fqdn is the cluster host of Service name in namespace ns.
func fqdn(name, ns string) string { return name + "." + ns + "." + clusterDomain }
