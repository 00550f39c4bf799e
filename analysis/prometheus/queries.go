package prometheus

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// The four shared queries that serve Inbound and Hops for every rollout.
// They read Istio's standard metrics (istio_requests_total and
// istio_request_duration_milliseconds) with the labels a real Istio mesh
// reports, so they work unchanged on a real Istio install; the local
// simulator and the tests serve the same metric and label names. Each is a
// template with one %s, which MeshQuery fills in with an optional
// namespace matcher inside the selector.
//
// They are raw sums of the counters as they stand at the evaluation time,
// with no rate() and no increase(). increase() extrapolates each series
// over a window it may not have filled, and has no earlier sample to
// subtract from a series that starts inside the window, so the first error
// of a workload, which creates its response_code="500" series at 1 (Envoy
// creates series lazily), is missed or guessed at. The caller takes the
// difference of two readings itself instead: a series that first appears
// between them is absent from the first, so it counts from zero, and a
// count covers exactly the scrapes between the two instants. A counter
// reset or a workload that goes away lowers a sum; the caller sees it as
// a decrease.
//
// They select no service: each returns every workload of the namespaces
// that have rollouts under analysis (see Source.scope), or of the whole
// mesh when those cannot be told, grouped just finely enough to split the
// result per rollout in Go, so that the load on Prometheus does not grow
// with the number of rollouts. The namespace matcher is on the namespace
// of the reporting workload: destination_workload_namespace for the
// inbound queries, source_workload_namespace for the hop queries, both
// standard Istio labels.
const (
	// InboundRequestsQuery is the cumulative count of the requests
	// received by each destination workload and version, by response
	// code, as reported by the receiving sidecar.
	InboundRequestsQuery = `sum by (destination_workload_namespace, destination_service, destination_service_name, destination_canonical_service, destination_workload, destination_version, response_code) (istio_requests_total{reporter="destination"%s})`

	// HopRequestsQuery is the cumulative count of the calls each source
	// workload and version made to each destination service, by response
	// code, as reported by the calling sidecar.
	HopRequestsQuery = `sum by (source_workload_namespace, source_workload, source_canonical_service, source_version, destination_service, destination_service_name, destination_canonical_service, response_code) (istio_requests_total{reporter="source"%s})`
)

// The two latency queries answer a thousand services with tens of
// thousands of bucket series (twenty buckets per workload and version),
// and most of an answer's bytes are its label names and values, repeated
// in every bucket: 13.5 MB at a thousand services, which a busy
// Prometheus took seconds to encode and serin to decode. So they are
// packed: the labels grouped by are joined into one (packLabel) with
// label_join, and they are restored from it on arrival (labelSets.of). The answer is
// less than half the size, and the series serin holds are the same.
var (
	// InboundLatencyQuery is the cumulative latency histogram of the
	// requests of InboundRequestsQuery, by bucket (le), in milliseconds,
	// packed.
	InboundLatencyQuery = pack(`istio_request_duration_milliseconds_bucket{reporter="destination"%s}`,
		"destination_workload_namespace", "destination_service", "destination_service_name", "destination_canonical_service", "destination_workload", "destination_version")

	// HopLatencyQuery is the cumulative latency histogram of the calls of
	// HopRequestsQuery, by bucket (le), in milliseconds, as seen by the
	// caller, packed.
	HopLatencyQuery = pack(`istio_request_duration_milliseconds_bucket{reporter="source"%s}`,
		"source_workload_namespace", "source_workload", "source_canonical_service", "source_version", "destination_service", "destination_service_name", "destination_canonical_service")
)

// packLabel is the label of a packed answer that holds the values of the
// labels grouped by, joined by packSep, in their order. No Kubernetes
// name, label value or DNS name holds a "|".
const packLabel, packSep = "serin_series", "|"

// packings lists the labels each packed template groups by, by the text
// before its %s, which no other template starts with.
var packings = map[string][]model.LabelName{}

// pack returns the query of the cumulative buckets selected by selector
// (with its %s), summed by labels and le, with labels packed into
// packLabel, and records how to unpack its answers.
func pack(selector string, labels ...string) string {
	quoted := make([]string, len(labels))
	names := make([]model.LabelName, len(labels))
	for i, l := range labels {
		quoted[i], names[i] = strconv.Quote(l), model.LabelName(l)
	}
	q := fmt.Sprintf(`sum by (%s, le) (label_join(sum by (%s, le) (%s), %q, %q, %s))`,
		packLabel, strings.Join(labels, ", "), selector, packLabel, packSep, strings.Join(quoted, ", "))
	packings[q[:strings.Index(q, "%s")]] = names
	return q
}

// packedBy returns the labels packed in the answers of query, nil when it
// is not a packed query.
func packedBy(query string) []model.LabelName {
	if i := strings.Index(query, "%s"); i >= 0 {
		query = query[:i]
	}
	for prefix, names := range packings {
		if strings.HasPrefix(query, prefix) {
			return names
		}
	}
	return nil
}

// MeshQuery fills one of the query templates above: namespaces, when not
// empty, become a matcher on the namespace label of the template, e.g.
// destination_workload_namespace=~"a|b", sorted, deduplicated and
// regexp-quoted so that the text (the key of the cache and of the shared
// flights) does not depend on their order; nil or empty means the whole
// mesh.
func MeshQuery(template string, namespaces []string) string {
	return fmt.Sprintf(template, namespaceMatcher(namespaceLabel(template), namespaces))
}

// namespaceLabel is the label that scopes a template to namespaces: the
// namespace of the workload whose sidecar reports its series.
func namespaceLabel(template string) string {
	switch template {
	case HopRequestsQuery, HopLatencyQuery:
		return "source_workload_namespace"
	default:
		return "destination_workload_namespace"
	}
}

// namespaceMatcher renders `, label=~"a|b"` for the given namespaces, or
// nothing when there are none.
func namespaceMatcher(label string, namespaces []string) string {
	if len(namespaces) == 0 {
		return ""
	}
	quoted := make([]string, len(namespaces))
	for i, ns := range namespaces {
		quoted[i] = regexp.QuoteMeta(ns)
	}
	slices.Sort(quoted)
	quoted = slices.Compact(quoted)
	// strconv.Quote escapes the backslashes of QuoteMeta for the PromQL
	// string literal, which unquotes like a Go one.
	return fmt.Sprintf(", %s=~%s", label, strconv.Quote(strings.Join(quoted, "|")))
}
