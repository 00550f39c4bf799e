package analysis

import (
	"strings"
	"testing"
)

func TestRenderQuery(t *testing.T) {
	q, err := RenderQuery(`sum(rate(x{namespace="{{ .Namespace }}",workload="{{ .CanaryWorkload }}"}[1m]))`,
		map[string]string{"Namespace": "shop", "CanaryWorkload": "checkout-v2"})
	if err != nil || q != `sum(rate(x{namespace="shop",workload="checkout-v2"}[1m]))` {
		t.Fatalf("RenderQuery = %q, %v", q, err)
	}
	if _, err := RenderQuery(`{{ .Nope }}`, map[string]string{}); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("unknown variable: err = %v, want one naming it", err)
	}
}

func TestFormatValueThreeSignificantFigures(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{497.5, "ms", "498 ms"}, {23.99, "ms", "24 ms"}, {38.788, "ms", "38.8 ms"}, {5.2, "%", "5.2%"},
		{0.00123, "", "0.00123"}, {12345, "ms", "12300 ms"}, {0, "%", "0%"}, {1, "calls/req", "1 calls/req"},
	} {
		if got := FormatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("FormatValue(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}
