package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api"
)

// The status shows the API's data plane line as it is, and nothing when
// the controller does not follow the proxies.
func TestPrintStatusDataPlane(t *testing.T) {
	now := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	r := api.Rollout{Namespace: "shop", Name: "checkout", Phase: "Progressing", Step: "step 2/4 (25%)", CreatedAt: now,
		DataPlane: "In the proxies: 25% on all 5, 0.3 s after the write."}
	var b bytes.Buffer
	printStatus(&b, r, now, "serin rollout")
	if !strings.Contains(b.String(), "Data plane:  In the proxies: 25% on all 5, 0.3 s after the write.") {
		t.Errorf("status does not show the data plane line:\n%s", b.String())
	}
	r.DataPlane = ""
	b.Reset()
	printStatus(&b, r, now, "serin rollout")
	if strings.Contains(b.String(), "Data plane") {
		t.Errorf("status shows a data plane line without one:\n%s", b.String())
	}
}
