package stack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// jaegerConfig is a Jaeger v2 (OpenTelemetry collector) configuration with an
// in-memory store in which every listener, the collector's own metrics
// included, binds 127.0.0.1: the built-in defaults bind all interfaces. Jaeger
// makes no outbound connection.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.Metrics}}
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    # On by default in v2: it exports Jaeger's own spans to localhost:4317,
    # which is outside the stack and makes shutdown wait for export timeouts.
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{{.QueryHTTP}}
    grpc:
      endpoint: 127.0.0.1:{{.QueryGRPC}}
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{{.Health}}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{.OTLPGRPC}}
      http:
        endpoint: 127.0.0.1:{{.OTLPHTTP}}

processors:
  batch:
    timeout: 100ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// renderJaegerConfig fills jaegerConfig with the ports.
func renderJaegerConfig(p jaegerPorts) (string, error) {
	var b strings.Builder
	if err := template.Must(template.New("jaeger").Parse(jaegerConfig)).Execute(&b, p); err != nil {
		return "", fmt.Errorf("jaeger: render config: %w", err)
	}
	return b.String(), nil
}

// jaegerPorts are the ports of one Jaeger run.
type jaegerPorts struct {
	OTLPGRPC, OTLPHTTP, QueryHTTP, QueryGRPC, Health, Metrics int
}

// startJaeger starts Jaeger v2 on free ports and waits for its health check.
func (s *Stack) startJaeger(ctx context.Context) error {
	return withPortRetry(func() error {
		ports, err := freePorts(6)
		if err != nil {
			return err
		}
		jp := jaegerPorts{ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]}
		cfg, err := renderJaegerConfig(jp)
		if err != nil {
			return err
		}
		cfgPath := filepath.Join(s.Dir, "jaeger.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return fmt.Errorf("jaeger: write %s: %w", cfgPath, err)
		}
		s.logf("starting jaeger (query on %s, OTLP/HTTP on %s)", hostPort(jp.QueryHTTP), hostPort(jp.OTLPHTTP))
		p, err := StartProcess(s.Dir, "jaeger", filepath.Join(BinDir(), "jaeger"), "--config", "file:"+cfgPath)
		if err != nil {
			return err
		}
		s.track(p, &s.jaeger)
		health := fmt.Sprintf("http://%s/status", hostPort(jp.Health))
		s.jaegerHealth = health
		if err := waitReady(ctx, p, 30*time.Second, HTTPReady(http.DefaultClient, health, nil)); err != nil {
			return err
		}
		s.JaegerQueryURL = "http://" + hostPort(jp.QueryHTTP)
		s.OTLPHTTPEndpoint = hostPort(jp.OTLPHTTP)
		s.OTLPGRPCEndpoint = hostPort(jp.OTLPGRPC)
		return nil
	})
}

// JaegerHealthURL returns the URL of Jaeger's health check, or "" when the
// stack runs no Jaeger.
func (s *Stack) JaegerHealthURL() string { return s.jaegerHealth }
