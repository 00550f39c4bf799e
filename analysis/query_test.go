package analysis

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

var testVars = map[string]string{
	"Namespace": "shop", "Name": "checkout-v2", "Service": "checkout", "Host": "checkout.shop.svc.cluster.local",
	"CanaryVersion": "v2", "StableVersion": "v1", "CanaryHost": "", "StableHost": "", "Window": "30s",
}

// TestRenderQueryAsBefore: the queries of the README and the e2e test
// render as text/template rendered them.
func TestRenderQueryAsBefore(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{`max(queue_depth{namespace="{{ .Namespace }}", version="{{ .CanaryVersion }}"})`,
			`max(queue_depth{namespace="shop", version="v2"})`},
		{`sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ .Namespace }}",` +
			`destination_service_name="{{ .Service }}",destination_version="{{ .CanaryVersion }}"}[{{ .Window }}]))`,
			`sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",` +
				`destination_service_name="checkout",destination_version="v2"}[30s]))`},
		{`{{.Service}}_queue{namespace="{{.Namespace}}"}`, `checkout_queue{namespace="shop"}`},
		{"up{namespace=`{{ .Namespace }}`} # {{ .Name }}", "up{namespace=`shop`} # checkout-v2"},
		{`up{a="}}"}`, `up{a="}}"}`},
		{`up`, `up`},
	} {
		got, err := RenderQuery(tc.query, testVars)
		if err != nil || got != tc.want {
			t.Errorf("RenderQuery(%s) = %q, %v; want %q", tc.query, got, err, tc.want)
		}
	}
}

// TestRenderQueryRefusesActions: anything but a placeholder is refused,
// naming it, and the hostile templates of issue 10 return at once instead
// of running.
func TestRenderQueryRefusesActions(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{`up{{range 9000000000000000000}}{{end}}`, `{{range 9000000000000000000}}: only {{ .Name }} placeholders are allowed`},
		{`{{range $i := .}}{{range $j := .}}{{range $k := .}}xxxxxxxx{{end}}{{end}}{{end}}`, `{{range $i := .}}`},
		{`up{a="{{ printf "%0999999d" 1 }}"}`, `{{ printf "%0999999d" 1 }}`},
		{`{{ .Namespace | len }}`, `{{ .Namespace | len }}`},
		{`{{- .Namespace -}}`, `{{- .Namespace -}}`},
		{`{{ template "x" }}`, `{{ template "x" }}`},
		{`{{/* comment */}}`, `{{/* comment */}}`},
		{`{{ .Namespace.Inner }}`, `{{ .Namespace.Inner }}`},
		{`{{ . }}`, `{{ . }}`},
		{`{{ .Nope }}`, `no variable Nope`},
		{`up{namespace="{{ .Namespace }}"`, ``},
		{`up{namespace="{{ .Namespace"}`, `is not closed by }}`},
		{`up{namespace="\{{ .Namespace }}"}`, `may not follow a backslash`},
		{`{{ .Name }}{namespace="shop"}`, `"checkout-v2" is outside a string literal`},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := RenderQuery(tc.query, testVars)
			done <- err
		}()
		select {
		case err := <-done:
			if tc.want == "" {
				if err != nil {
					t.Errorf("RenderQuery(%s) = %v, want no error (PromQL's parser judges the rest)", tc.query, err)
				}
				continue
			}
			if !errors.Is(err, ErrQueryTemplate) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RenderQuery(%s) = %v, want ErrQueryTemplate naming %q", tc.query, err, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("RenderQuery(%s) still running after 5s", tc.query)
		}
	}
}

// TestRenderQueryBoundsItsOutput: 4 KiB of placeholders of long values
// would render to far more than MaxQueryBytes; RenderQuery refuses it.
func TestRenderQueryBoundsItsOutput(t *testing.T) {
	vars := map[string]string{"Host": strings.Repeat("h", 253)}
	q := `x{a="` + strings.Repeat("{{.Host}}", 4096/9) + `"}`
	got, err := RenderQuery(q, vars)
	if !errors.Is(err, ErrQueryTemplate) || !strings.Contains(err.Error(), "over 16384 bytes") || got != "" {
		t.Fatalf("RenderQuery of %d bytes = %d bytes, %v; want an error over 16384 bytes", len(q), len(got), err)
	}
	if _, err := RenderQuery(`x{a="`+strings.Repeat("{{.Host}}", 60)+`"}`, vars); err != nil {
		t.Fatalf("15 KiB rendered: %v", err)
	}
}

// TestRenderQueryValuesStayInTheirString: whatever a value holds, in a
// double- or single-quoted string it parses back as itself, so it can
// neither end the string nor add a matcher. Seeded; the seed is printed on
// failure.
func TestRenderQueryValuesStayInTheirString(t *testing.T) {
	const seed = 10
	rng := rand.New(rand.NewPCG(seed, 0))
	alphabet := []string{`"`, `'`, "`", `\`, `\"`, "\n", "\r", "\t", "\x00", "\x7f", "\xff", "}", "{", ",", "=~", "#",
		"é", "\u2028", "a", "namespace", " or up", `"}`, `"} or up{a="`}
	p := parser.NewParser(parser.Options{})
	for i := range 2000 {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		v := b.String()
		for _, tmpl := range []string{`x{namespace="shop", l="{{ .V }}"}`, `x{namespace="shop", l='{{ .V }}'}`, "x{namespace=\"shop\"} # {{ .V }}\n"} {
			q, err := RenderQuery(tmpl, map[string]string{"V": v})
			if err != nil {
				t.Fatalf("seed %d case %d: %q in %s: %v", seed, i, v, tmpl, err)
			}
			expr, err := p.ParseExpr(q)
			if err != nil {
				t.Fatalf("seed %d case %d: %q rendered %s, which does not parse: %v", seed, i, v, q, err)
			}
			want := map[string]string{"__name__": "x", "namespace": "shop", "l": v}
			if strings.Contains(tmpl, "#") {
				delete(want, "l") // a comment
			}
			vs, ok := expr.(*parser.VectorSelector)
			if !ok || len(vs.LabelMatchers) != len(want) {
				t.Fatalf("seed %d case %d: %q rendered %s: the query changed shape (%T %v)", seed, i, v, q, expr, expr)
			}
			for _, m := range vs.LabelMatchers {
				if m.Value != want[m.Name] {
					t.Fatalf("seed %d case %d: %q rendered %s, which reads back %s=%q", seed, i, v, q, m.Name, m.Value)
				}
			}
		}
	}
}

// TestRenderQueryRawStrings: a raw string takes values as they are, but
// one with a backquote cannot be written in it.
func TestRenderQueryRawStrings(t *testing.T) {
	if _, err := RenderQuery("x{l=`{{ .V }}`}", map[string]string{"V": "a`} or up{b=`"}); !errors.Is(err, ErrQueryTemplate) {
		t.Fatalf("backquote in a raw string: %v, want ErrQueryTemplate", err)
	}
	if q, err := RenderQuery("x{l=`{{ .V }}`}", map[string]string{"V": `a"b\c`}); err != nil || q != "x{l=`a\"b\\c`}" {
		t.Fatalf("raw string: %q, %v", q, err)
	}
}

// TestRenderQueryPlainNamesOutsideStrings: outside a string a value is
// part of the syntax, so only plain names pass.
func TestRenderQueryPlainNamesOutsideStrings(t *testing.T) {
	for _, v := range []string{"x or up", "a-b", "a.b", `"`, "1)", "#", "a\nb"} {
		if _, err := RenderQuery(`rate(x{namespace="shop"}[{{ .V }}])`, map[string]string{"V": v}); !errors.Is(err, ErrQueryTemplate) {
			t.Errorf("%q outside a string: %v, want ErrQueryTemplate", v, err)
		}
	}
	for _, v := range []string{"30s", "checkout_v2", ""} {
		if _, err := RenderQuery(`rate(x{namespace="shop"}[{{ .V }}])`, map[string]string{"V": v}); err != nil {
			t.Errorf("%q outside a string: %v", v, err)
		}
	}
}

// BenchmarkRenderQueryHostile shows the time a hostile template costs.
func BenchmarkRenderQueryHostile(b *testing.B) {
	for b.Loop() {
		_, _ = RenderQuery(`up{{range 9000000000000000000}}{{end}}`, testVars)
	}
}
