package meshsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// loadgenService is the service.name of the load generator's root spans.
const loadgenService = "loadgen"

// tracers owns one TracerProvider per workload, plus one for the load
// generator, so that each span's resource carries the right service.name
// (the app) and service.version. Context crosses hops as W3C traceparent.
//
// A Deployment workload gets its provider on its first span, one per pod
// template (its key), since a template change may change the version. They
// are kept until shutdown: a few per rollout.
type tracers struct {
	prop      propagation.TextMapPropagator
	endpoint  string
	client    *http.Client
	transport *http.Transport

	mu         sync.Mutex
	byWorkload map[string]trace.Tracer // by workload key; "" is the load generator
	providers  []*sdktrace.TracerProvider
}

// newTracers creates the providers. With endpoint "" tracing is off: spans
// are no-ops and nothing is exported.
func newTracers(ctx context.Context, endpoint string, cat *catalog) (*tracers, error) {
	t := &tracers{prop: propagation.TraceContext{}, byWorkload: map[string]trace.Tracer{}}
	if endpoint == "" {
		np := noop.NewTracerProvider()
		t.byWorkload[""] = np.Tracer("meshsim")
		for name := range cat.workloads {
			t.byWorkload[name] = np.Tracer("meshsim")
		}
		return t, nil
	}
	t.transport = &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: t.transport, Timeout: 10 * time.Second}
	t.endpoint, t.client = endpoint, client
	tr, err := t.newProvider(ctx, endpoint, client, loadgenService, "v1",
		attribute.String("k8s.namespace.name", cat.namespace))
	if err != nil {
		return nil, err
	}
	t.byWorkload[""] = tr
	for name, w := range cat.workloads {
		tr, err := t.newProvider(ctx, endpoint, client, w.app, w.version,
			attribute.String("k8s.namespace.name", w.namespace),
			attribute.String("k8s.deployment.name", name),
			attribute.String("service.instance.id", name+"-meshsim"))
		if err != nil {
			return nil, errors.Join(err, t.shutdown(ctx))
		}
		t.byWorkload[name] = tr
	}
	return t, nil
}

// newProvider creates one TracerProvider exporting over OTLP/HTTP with a
// short batch timeout, so that spans are queryable about a second later.
func (t *tracers) newProvider(ctx context.Context, endpoint string, client *http.Client,
	service, version string, extra ...attribute.KeyValue) (trace.Tracer, error) {
	exp, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpoint(endpoint),
		otlptracehttp.WithInsecure(),
		otlptracehttp.WithHTTPClient(client),
		otlptracehttp.WithTimeout(5*time.Second),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled: true, InitialInterval: 100 * time.Millisecond,
			MaxInterval: time.Second, MaxElapsedTime: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter for %s %s to %s: %w", service, version, endpoint, err)
	}
	attrs := append([]attribute.KeyValue{
		attribute.String("service.name", service),
		attribute.String("service.version", version),
		attribute.Bool("meshsim.stand_in", true),
	}, extra...)
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil { // only on conflicting schema URLs, which a schemaless resource cannot have
		res = resource.NewSchemaless(attrs...)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp,
			sdktrace.WithBatchTimeout(100*time.Millisecond),
			sdktrace.WithExportTimeout(5*time.Second)),
	)
	t.mu.Lock()
	t.providers = append(t.providers, tp)
	t.mu.Unlock()
	return tp.Tracer("github.com/serin-dev/serin/test/meshsim"), nil
}

// tracer returns the tracer of workload w, or the load generator's for nil.
// A Deployment workload's is made on first use; should that fail (it only
// can on a bad endpoint, which the start already checked), its spans are
// dropped.
func (t *tracers) tracer(w *workload) trace.Tracer {
	key := ""
	if w != nil {
		key = w.key()
	}
	t.mu.Lock()
	tr, ok := t.byWorkload[key]
	t.mu.Unlock()
	if ok {
		return tr
	}
	tr = noop.NewTracerProvider().Tracer("meshsim")
	if t.endpoint != "" {
		made, err := t.newProvider(context.Background(), t.endpoint, t.client, w.app, w.versionLabel(),
			attribute.String("k8s.namespace.name", w.namespace),
			attribute.String("k8s.deployment.name", w.name()),
			attribute.String("service.instance.id", w.key()+"-meshsim"))
		if err == nil {
			tr = made
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.byWorkload[key]; ok { // another span got there first; its provider stays unused until shutdown
		return prev
	}
	t.byWorkload[key] = tr
	return tr
}

// shutdown flushes and stops every provider, then closes idle exporter
// connections.
func (t *tracers) shutdown(ctx context.Context) error {
	var errs []error
	t.mu.Lock()
	providers := t.providers
	t.mu.Unlock()
	for _, tp := range providers {
		if err := tp.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if t.transport != nil {
		t.transport.CloseIdleConnections()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shut down tracer providers: %w", err)
	}
	return nil
}

// spanInfo is what a hop's span records besides its kind.
type spanInfo struct {
	self        *workload // the workload emitting the span; nil for the load generator
	route, host string    // http.route, and the called Service's FQDN
	peerService string    // peer.service
	cluster     string    // Envoy's upstream_cluster
}

// start starts a CLIENT or SERVER span for one hop with Envoy-like
// attributes; end it with endSpan.
func (t *tracers) start(ctx context.Context, kind trace.SpanKind, s spanInfo) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		attribute.String("http.method", http.MethodGet),
		attribute.String("http.route", s.route),
		attribute.String("http.url", "http://"+s.host+s.route),
		attribute.String("peer.service", s.peerService),
		attribute.String("upstream_cluster", s.cluster),
		attribute.String("component", "proxy"),
	}
	if s.self != nil {
		attrs = append(attrs,
			attribute.String("istio.canonical_service", s.self.canonicalService()),
			attribute.String("istio.canonical_revision", s.self.canonicalRevision()),
			attribute.String("istio.namespace", s.self.namespace))
	}
	name := http.MethodGet + " " + s.route
	return t.tracer(s.self).Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// endSpan records the status code, marks 5xx as an error, and ends span.
func endSpan(span trace.Span, code int, flags string) {
	span.SetAttributes(attribute.Int("http.status_code", code))
	if flags != "" && flags != "-" {
		span.SetAttributes(attribute.String("response_flags", flags))
	}
	if code >= 500 {
		span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", code))
	}
	span.End()
}
