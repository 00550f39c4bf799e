package jaeger

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// OTLP span kinds and status codes that edge computation needs.
const (
	kindServer      = 2
	kindClient      = 3
	statusCodeError = 2
)

// span is the part of an OTLP span that edge computation needs, with the
// identity (service.name, service.version) of the resource that emitted it.
type span struct {
	TraceID  string
	SpanID   string
	ParentID string // "" for a root span
	Service  string
	Version  string
	// Namespace is the resource's k8s.namespace.name (or
	// service.namespace); "" when the emitter does not say.
	Namespace string
	Kind      int // OTLP SpanKind: 2 server, 3 client
	// CalledHost is the host the span's request was sent to, lowercased,
	// without a port; "" when the span does not say. For a CLIENT span it
	// is the host in Envoy's upstream_cluster, where the mesh routed the
	// call ("outbound|80||checkout-canary.shop.svc.cluster.local"), else the
	// host of http.url (or url.full), which is the host asked for. For a
	// SERVER span it is only the host in its inbound upstream_cluster, when
	// the proxy names one: its http.url is the host the client asked for,
	// not the one that served it.
	CalledHost string
	StartNs    int64 // Unix nanoseconds
	EndNs      int64
	// Failed is true when the span's status is ERROR or its HTTP status
	// code is 5xx.
	Failed bool
}

// DurationMs is the span's duration in milliseconds, never negative.
func (s span) DurationMs() float64 {
	if s.EndNs <= s.StartNs {
		return 0
	}
	return float64(s.EndNs-s.StartNs) / 1e6
}

// envelope is one top-level JSON object of an API v3 answer. Jaeger v1.76
// sends a single {"result": TracesData} object (or {"error": ...}); the
// grpc-gateway style it descends from streams several such objects, and a
// proxy might unwrap the result, so all three shapes are accepted.
type envelope struct {
	Result        *tracesData     `json:"result"`
	ResourceSpans []resourceSpans `json:"resourceSpans"`
	Error         *gatewayError   `json:"error"`
}

// gatewayError is the error object of the API v3 HTTP gateway, e.g.
// {"error":{"httpCode":404,"message":"No traces found"}}.
type gatewayError struct {
	HTTPCode int    `json:"httpCode"`
	Message  string `json:"message"`
}

// tracesData is OTLP JSON's TracesData.
type tracesData struct {
	ResourceSpans []resourceSpans `json:"resourceSpans"`
}

// resourceSpans is OTLP JSON's ResourceSpans.
type resourceSpans struct {
	Resource struct {
		Attributes []keyValue `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []struct {
		Spans []otlpSpan `json:"spans"`
	} `json:"scopeSpans"`
}

// otlpSpan is OTLP JSON's Span, reduced to the fields used here.
type otlpSpan struct {
	TraceID           string     `json:"traceId"`
	SpanID            string     `json:"spanId"`
	ParentSpanID      string     `json:"parentSpanId"`
	Kind              enumValue  `json:"kind"`
	StartTimeUnixNano flexInt    `json:"startTimeUnixNano"`
	EndTimeUnixNano   flexInt    `json:"endTimeUnixNano"`
	Attributes        []keyValue `json:"attributes"`
	Status            struct {
		Code enumValue `json:"code"`
	} `json:"status"`
}

// keyValue is OTLP JSON's KeyValue.
type keyValue struct {
	Key   string   `json:"key"`
	Value anyValue `json:"value"`
}

// anyValue is OTLP JSON's AnyValue, scalars only.
type anyValue struct {
	StringValue *string  `json:"stringValue"`
	IntValue    *flexInt `json:"intValue"`
	DoubleValue *float64 `json:"doubleValue"`
}

// flexInt is a 64-bit integer that OTLP JSON encodes as a string
// ("1795541197641169304") but some encoders write as a number.
type flexInt int64

// UnmarshalJSON accepts a JSON number or a string holding one.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("integer %s: %w", b, err)
	}
	*f = flexInt(n)
	return nil
}

// enumNames maps the protobuf enum names that some JSON encoders write
// instead of numbers to their values. Span kind and status code names do not
// collide.
var enumNames = map[string]int{
	"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
	"SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
	"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
}

// enumValue is a protobuf enum in JSON: a number, or its name as a string.
type enumValue int

// UnmarshalJSON accepts a number, a numeric string or a known enum name.
// Unknown names decode as 0 (unspecified) rather than failing the answer.
func (e *enumValue) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*e = enumValue(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("enum %s: want a number or a string", b)
	}
	if v, ok := enumNames[s]; ok {
		*e = enumValue(v)
	} else if v, err := strconv.Atoi(s); err == nil {
		*e = enumValue(v)
	} else {
		*e = 0
	}
	return nil
}

// errEmptyBody is returned for an answer that holds no JSON value at all.
var errEmptyBody = errors.New("empty response body")

// decodeTraces reads every JSON object of an API v3 answer and returns the
// spans they hold. An "error" object in the stream, a body that is not JSON
// and a body with no result at all are errors.
func decodeTraces(r io.Reader) ([]span, error) {
	dec := json.NewDecoder(r)
	var out []span
	for objects := 0; ; objects++ {
		var env envelope
		err := dec.Decode(&env)
		if errors.Is(err, io.EOF) {
			if objects == 0 {
				return nil, errEmptyBody
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode JSON object %d: %w", objects+1, err)
		}
		switch {
		case env.Error != nil:
			return nil, fmt.Errorf("error in answer: HTTP %d: %s", env.Error.HTTPCode, env.Error.Message)
		case env.Result != nil:
			out = appendSpans(out, env.Result.ResourceSpans)
		case env.ResourceSpans != nil:
			out = appendSpans(out, env.ResourceSpans)
		default:
			return nil, fmt.Errorf("JSON object %d has neither result, resourceSpans nor error", objects+1)
		}
	}
}

// appendSpans flattens resource spans into spans labelled with their
// resource's service.name and service.version.
func appendSpans(out []span, rss []resourceSpans) []span {
	for _, rs := range rss {
		service := stringAttr(rs.Resource.Attributes, "service.name")
		version := stringAttr(rs.Resource.Attributes, "service.version")
		ns := stringAttr(rs.Resource.Attributes, "k8s.namespace.name")
		if ns == "" {
			ns = stringAttr(rs.Resource.Attributes, "service.namespace")
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, span{
					TraceID:    normID(s.TraceID),
					SpanID:     normID(s.SpanID),
					ParentID:   normID(s.ParentSpanID),
					Service:    service,
					Version:    spanVersion(s.Attributes, version),
					Namespace:  ns,
					Kind:       int(s.Kind),
					CalledHost: calledHost(int(s.Kind), s.Attributes),
					StartNs:    int64(s.StartTimeUnixNano),
					EndNs:      int64(s.EndTimeUnixNano),
					Failed:     int(s.Status.Code) == statusCodeError || httpStatus(s.Attributes) >= 500,
				})
			}
		}
	}
	return out
}

// spanVersion is the version of the workload that emitted a span: Istio's
// istio.canonical_revision tag when the span has one (the pod's
// service.istio.io/canonical-revision label, else its version label), else
// the resource's service.version. serin's copies of a delivered workload
// share the version label and differ in their canonical revision.
func spanVersion(attrs []keyValue, resourceVersion string) string {
	if rev := stringAttr(attrs, "istio.canonical_revision"); rev != "" && rev != "latest" {
		return rev
	}
	return resourceVersion
}

// stringAttr returns the string attribute key, or "".
func stringAttr(attrs []keyValue, key string) string {
	for _, kv := range attrs {
		if kv.Key == key && kv.Value.StringValue != nil {
			return *kv.Value.StringValue
		}
	}
	return ""
}

// calledHost returns a span's CalledHost from its attributes.
func calledHost(kind int, attrs []keyValue) string {
	if h := clusterHost(stringAttr(attrs, "upstream_cluster")); h != "" {
		return h
	}
	if kind != kindClient {
		return ""
	}
	for _, key := range []string{"http.url", "url.full"} {
		if u, err := url.Parse(stringAttr(attrs, key)); err == nil && u.Hostname() != "" {
			return strings.ToLower(u.Hostname())
		}
	}
	return ""
}

// clusterHost returns the host of an Istio cluster name,
// "direction|port|subset|host" (e.g.
// "outbound|80||checkout-canary.shop.svc.cluster.local"), or "" when name
// is not one or names no host (newer Istio's "inbound|8080||").
func clusterHost(name string) string {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || (parts[0] != "outbound" && parts[0] != "inbound") {
		return ""
	}
	return strings.ToLower(parts[3])
}

// httpStatus returns the span's HTTP status code from the old
// (http.status_code) or the current (http.response.status_code) semantic
// convention, written as an int, a double or a string; 0 when absent.
func httpStatus(attrs []keyValue) int {
	for _, kv := range attrs {
		if kv.Key != "http.status_code" && kv.Key != "http.response.status_code" {
			continue
		}
		v := kv.Value
		switch {
		case v.IntValue != nil:
			return int(*v.IntValue)
		case v.DoubleValue != nil:
			return int(*v.DoubleValue)
		case v.StringValue != nil:
			if n, err := strconv.Atoi(*v.StringValue); err == nil {
				return n
			}
		}
	}
	return 0
}

// normID returns a trace or span ID as lowercase hex. OTLP JSON writes IDs
// in hex, but protobuf's canonical JSON (used by older Jaeger gateways)
// writes them in base64; an ID that is neither is kept as it is. An all-zero
// ID, which some encoders write for a root span's parent, is "".
func normID(id string) string {
	if strings.Trim(id, "0") == "" { // "" or all zeros: no ID (a root's parent)
		return ""
	}
	if _, err := hex.DecodeString(id); err == nil {
		return strings.ToLower(id)
	}
	if b, err := base64.StdEncoding.DecodeString(id); err == nil && (len(b) == 8 || len(b) == 16) {
		return hex.EncodeToString(b)
	}
	return id
}
