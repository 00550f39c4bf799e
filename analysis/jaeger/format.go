package jaeger

import (
	"fmt"
	"math"
	"strconv"

	"github.com/serin-dev/serin/analysis"
)

// FormatEdge describes an edge's canary p99 against the stable's, for a
// result reason, e.g.
//
//	checkout v2 → payments: p99 840 ms vs 95 ms on v1
//
// service is the analysed service: its end of the edge carries the canary's
// label (the version, or the canary's host name in host mode). Errors are
// appended when either side had any:
//
//	checkout v2 → payments: p99 840 ms vs 95 ms on v1, errors 3/40 vs 0/38
//
// A p99 that could not be computed reads "n/a".
func FormatEdge(service string, e analysis.Edge, canaryLabel, stableLabel string, p analysis.EdgePair) string {
	from, to := e.From, e.To
	switch service {
	case e.From:
		from += " " + canaryLabel
	case e.To:
		to += " " + canaryLabel
	}
	msg := fmt.Sprintf("%s → %s: p99 %s vs %s on %s", from, to, formatMs(p.Canary.P99Ms), formatMs(p.Stable.P99Ms), stableLabel)
	if p.Canary.Errors > 0 || p.Stable.Errors > 0 {
		msg += fmt.Sprintf(", errors %g/%g vs %g/%g", p.Canary.Errors, p.Canary.Requests, p.Stable.Errors, p.Stable.Requests)
	}
	return msg
}

// formatMs writes milliseconds whole from 10 ms up and to a tenth below, so
// that a sub-millisecond p99 does not read "0 ms".
func formatMs(ms float64) string {
	if math.IsNaN(ms) || math.IsInf(ms, 0) {
		return "n/a"
	}
	if ms >= 10 {
		return strconv.FormatFloat(math.Round(ms), 'f', -1, 64) + " ms"
	}
	return strconv.FormatFloat(math.Round(ms*10)/10, 'f', -1, 64) + " ms"
}
