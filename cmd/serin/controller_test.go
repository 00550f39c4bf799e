package main

import (
	"strings"
	"testing"
)

func TestParseControllerFlags(t *testing.T) {
	tests := []struct {
		args []string
		err  string // "" means valid
	}{
		{[]string{"--no-analysis"}, ""},
		{[]string{"--prometheus-url", "http://127.0.0.1:9090", "--jaeger-url", "http://127.0.0.1:16686"}, ""},
		{nil, "--prometheus-url is required"},
		{[]string{"--no-analysis", "--prometheus-url", "http://p:9090"}, "contradict"},
		{[]string{"--no-analysis", "--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"--no-analysis", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--no-analysis", "--http-addr", "8080"}, `--http-addr "8080"`},
		{[]string{"--no-analysis", "--metrics-addr", ":8443"}, ""},
		{[]string{"--no-analysis", "--metrics-addr", ":8443", "--metrics-cert-dir", "/certs"}, ""},
		{[]string{"--no-analysis", "--metrics-addr", "8443"}, `--metrics-addr "8443"`},
		{[]string{"--no-analysis", "--metrics-cert-dir", "/certs"}, "only used with --metrics-addr"},
		{[]string{"--prometheus-url", "http://p:9090", "--scrape-interval", "0s"}, "--scrape-interval"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--no-analysis", "--auth", "ldap"}, `--auth "ldap"`},
		{[]string{"--no-analysis", "--auth", "static"}, "needs --api-token-file"},
		{[]string{"--no-analysis", "--api-token-file", "/x"}, "only used with --auth=static"},
		{[]string{"--no-analysis", "--auth", "static", "--api-token-file", "/x"}, ""},
		{[]string{"--no-analysis", "--auth", "static", "--api-token-file", "/x", "--secure-cookies"}, ""},
		{[]string{"--no-analysis", "--auth", "kubernetes"}, ""},
		{[]string{"--no-analysis", "--istiod-url", "http://istiod.istio-system:15014"}, ""},
		{[]string{"--no-analysis", "--istiod-url", "istiod:15014"}, "--istiod-url"},
		{[]string{"--no-analysis", "--istiod-token-file", "/var/run/secrets/istio/token"}, "only used with --istiod-url"},
		{[]string{"--no-analysis", "--istiod-url", "http://istiod:15014", "--dataplane-timeout", "0s"}, "--dataplane-timeout"},
	}
	for _, tc := range tests {
		_, err := parseControllerFlags(tc.args)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.err)
		}
	}
}

func TestNewAnalyzerRefusesABadURL(t *testing.T) {
	o, err := parseControllerFlags([]string{"--prometheus-url", "not a url"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newAnalyzer(o, nil, nil); err == nil || !strings.Contains(err.Error(), "--prometheus-url") {
		t.Fatalf("newAnalyzer with a bad URL: %v, want an error naming --prometheus-url", err)
	}
}
