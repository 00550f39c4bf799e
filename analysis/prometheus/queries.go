package prometheus

import (
	"fmt"
	"time"
)

// The four mesh-wide queries that serve Inbound and Hops for every rollout.
// They read Istio's standard metrics (istio_requests_total and
// istio_request_duration_milliseconds) with the labels a real Istio mesh
// reports, so they work unchanged on a real Istio install; the local
// simulator and the tests serve the same metric and label names. Each is a
// template with one %s for the range, which MeshQuery fills in.
//
// They select no service: each returns every workload of the mesh, grouped
// just finely enough to split the result per rollout in Go, so that the
// load on Prometheus does not grow with the number of rollouts.
const (
	// InboundRequestsQuery counts the requests received by each
	// destination workload and version, by response code, as reported by
	// the receiving sidecar.
	InboundRequestsQuery = `sum by (destination_workload_namespace, destination_service, destination_service_name, destination_canonical_service, destination_workload, destination_version, response_code) (increase(istio_requests_total{reporter="destination"}[%s]))`

	// InboundLatencyQuery is the latency histogram of the same requests,
	// by bucket (le), in milliseconds.
	InboundLatencyQuery = `sum by (destination_workload_namespace, destination_service, destination_service_name, destination_canonical_service, destination_workload, destination_version, le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination"}[%s]))`

	// HopRequestsQuery counts the calls each source workload and version
	// made to each destination service, by response code, as reported by
	// the calling sidecar.
	HopRequestsQuery = `sum by (source_workload_namespace, source_workload, source_canonical_service, source_version, destination_service, destination_service_name, destination_canonical_service, response_code) (increase(istio_requests_total{reporter="source"}[%s]))`

	// HopLatencyQuery is the latency histogram of the same calls, by bucket
	// (le), in milliseconds, as seen by the caller.
	HopLatencyQuery = `sum by (source_workload_namespace, source_workload, source_canonical_service, source_version, destination_service, destination_service_name, destination_canonical_service, le) (increase(istio_request_duration_milliseconds_bucket{reporter="source"}[%s]))`
)

// MeshQuery fills the range of one of the query templates above with the
// window rounded to whole seconds (at least one), e.g. "[30s]".
func MeshQuery(template string, window time.Duration) string {
	return fmt.Sprintf(template, promRange(window))
}

// promRange formats a window as a PromQL range in whole seconds.
func promRange(window time.Duration) string {
	secs := int64(window.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return fmt.Sprintf("%ds", secs)
}
