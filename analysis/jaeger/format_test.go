package jaeger

import (
	"math"
	"testing"

	"github.com/serin-dev/serin/analysis"
)

func TestFormatEdge(t *testing.T) {
	pair := func(c, s analysis.Stats) analysis.EdgePair {
		return analysis.EdgePair{Pair: analysis.Pair{Canary: c, Stable: s}}
	}
	tests := []struct {
		name string
		e    analysis.Edge
		p    analysis.EdgePair
		want string
	}{
		{"outbound", analysis.Edge{From: "checkout", To: "payments"},
			pair(analysis.Stats{Requests: 40, P99Ms: 840.4}, analysis.Stats{Requests: 38, P99Ms: 95}),
			"checkout v2 → payments: p99 840 ms vs 95 ms on v1"},
		{"inbound", analysis.Edge{From: "frontend", To: "checkout"},
			pair(analysis.Stats{Requests: 4, P99Ms: 2.25}, analysis.Stats{Requests: 3, P99Ms: 0.4}),
			"frontend → checkout v2: p99 2.3 ms vs 0.4 ms on v1"},
		{"with errors", analysis.Edge{From: "checkout", To: "payments"},
			pair(analysis.Stats{Requests: 40, Errors: 3, P99Ms: 120}, analysis.Stats{Requests: 38, P99Ms: 95}),
			"checkout v2 → payments: p99 120 ms vs 95 ms on v1, errors 3/40 vs 0/38"},
		{"no stable calls", analysis.Edge{From: "checkout", To: "fraud"},
			pair(analysis.Stats{Requests: 5, P99Ms: 12}, analysis.Stats{P99Ms: math.NaN()}),
			"checkout v2 → fraud: p99 12 ms vs n/a on v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatEdge("checkout", tt.e, "v2", "v1", tt.p); got != tt.want {
				t.Errorf("FormatEdge = %q, want %q", got, tt.want)
			}
		})
	}
}
