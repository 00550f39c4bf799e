package meshsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// OTLP span kinds and status codes as Jaeger's /api/v3 returns them.
const (
	kindServer      = 2
	kindClient      = 3
	statusCodeError = 2
)

// span is one span of a Jaeger /api/v3/traces answer, with its resource's
// service name, version and namespace.
type span struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Attributes   []kv   `json:"attributes"`
	Status       struct {
		Code int `json:"code"`
	} `json:"status"`
	service, version, namespace string
}

// kv is an OTLP attribute.
type kv struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string `json:"stringValue"`
		IntValue    *string `json:"intValue"` // OTLP JSON encodes int64 as a string
	} `json:"value"`
}

// attr returns the string or int attribute key of s, and whether it is an int.
func (s *span) attr(key string) (value string, isInt bool) {
	for _, a := range s.Attributes {
		if a.Key != key {
			continue
		}
		if a.Value.IntValue != nil {
			return *a.Value.IntValue, true
		}
		if a.Value.StringValue != nil {
			return *a.Value.StringValue, false
		}
	}
	return "", false
}

// jaegerTraces queries /api/v3/traces for service's traces since start and
// returns their spans grouped by trace ID.
func jaegerTraces(ctx context.Context, service string, start time.Time) (map[string][]*span, error) {
	q := url.Values{
		"query.service_name":   {service},
		"query.start_time_min": {start.UTC().Format(time.RFC3339Nano)},
		"query.start_time_max": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)},
		"query.num_traces":     {"50"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.JaegerQueryURL+"/api/v3/traces?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("jaeger query: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jaeger query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger query: HTTP %d", resp.StatusCode)
	}
	var body struct {
		Result struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []kv `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []*span `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("jaeger query: decode: %w", err)
	}
	traces := map[string][]*span{}
	for _, rs := range body.Result.ResourceSpans {
		res := span{Attributes: rs.Resource.Attributes}
		svc, _ := res.attr("service.name")
		ver, _ := res.attr("service.version")
		ns, _ := res.attr("k8s.namespace.name")
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				s.service, s.version, s.namespace = svc, ver, ns
				traces[s.TraceID] = append(traces[s.TraceID], s)
			}
		}
	}
	return traces, nil
}

// hopStep is one span expected on the way from payments up to the root.
type hopStep struct {
	service, version string
	kind             int
}

// chainToRoot is the expected ancestry of payments' SERVER span when
// checkout v2 serves: each span the child of the next, the last the root.
var chainToRoot = []hopStep{
	{Payments, "v1", kindServer},
	{Checkout, "v2", kindClient},
	{Checkout, "v2", kindServer},
	{Frontend, "v1", kindClient},
	{Frontend, "v1", kindServer},
	{loadgenService, "v1", kindClient},
}

// checkChain verifies that trace holds the whole chain loadgen → frontend →
// checkout v2 → payments with parent links intact, the version on each
// span's resource, namespace ns and an integer http.status_code. It returns
// payments' SERVER span.
func checkChain(trace []*span, ns string) (*span, error) {
	byID := map[string]*span{}
	var leaf *span
	for _, s := range trace {
		byID[s.SpanID] = s
		if s.service == Payments && s.Kind == kindServer {
			leaf = s
		}
	}
	if leaf == nil {
		return nil, fmt.Errorf("no payments SERVER span")
	}
	cur := leaf
	for i, want := range chainToRoot {
		if cur.service != want.service || cur.version != want.version || cur.Kind != want.kind || cur.namespace != ns {
			return nil, fmt.Errorf("step %d: span %q is %s %s kind %d in %q, want %s %s kind %d in %q",
				i, cur.Name, cur.service, cur.version, cur.Kind, cur.namespace, want.service, want.version, want.kind, ns)
		}
		if _, isInt := cur.attr("http.status_code"); !isInt {
			return nil, fmt.Errorf("step %d: span %q has no integer http.status_code", i, cur.Name)
		}
		if i == len(chainToRoot)-1 {
			if cur.ParentSpanID != "" {
				return nil, fmt.Errorf("the load generator's span has parent %s, want none", cur.ParentSpanID)
			}
			break
		}
		parent, ok := byID[cur.ParentSpanID]
		if !ok {
			return nil, fmt.Errorf("step %d: parent %q of span %q is not in the trace", i, cur.ParentSpanID, cur.Name)
		}
		cur = parent
	}
	return leaf, nil
}

func TestStackJaegerHasTheWholeChain(t *testing.T) {
	const ns = "shop-traces"
	createNamespace(t, ns)
	createCanaryRouting(t, ns, 0, 100)
	s := startMesh(t, ns, 0)
	if err := s.SetFault(Payments, "v1", Fault{ErrorRate: 0.5}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	start := time.Now().Add(-time.Second)
	counts, err := s.Fire(t.Context(), 20)
	if err != nil || counts["v2"] != 20 {
		t.Fatalf("Fire = %v, %v; want 20 served by checkout v2", counts, err)
	}
	var complete, failed int
	eventually(t, 15*time.Second, "traces in Jaeger", func() error {
		traces, err := jaegerTraces(t.Context(), Payments, start)
		if err != nil {
			return err
		}
		complete, failed = 0, 0
		var lastErr error
		for _, tr := range traces {
			leaf, err := checkChain(tr, ns)
			if err != nil {
				lastErr = err
				continue
			}
			complete++
			if code, _ := leaf.attr("http.status_code"); code == "500" {
				if leaf.Status.Code != statusCodeError {
					return fmt.Errorf("payments span with status 500 has span status %d, want Error", leaf.Status.Code)
				}
				failed++
			}
		}
		if complete < 20 || failed == 0 {
			return fmt.Errorf("%d complete traces (want 20), %d with a failed payments span (want some); last problem: %v",
				complete, failed, lastErr)
		}
		return nil
	})
	t.Logf("%d complete traces, %d with payments failing", complete, failed)
}
