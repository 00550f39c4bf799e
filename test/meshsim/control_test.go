package meshsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// do sends a control request and returns the status and body.
func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

func TestControlAPI(t *testing.T) {
	s := startLocal(t, Options{})
	base := s.ControlURL()
	full := `{"errorRate":0.2,"latencyMs":300,"latencyJitterMs":50,"downstreamCalls":3,"downstreamLatencyMs":200}`

	if code, body := do(t, http.MethodPut, base+"/faults/checkout/v2", full); code != http.StatusOK {
		t.Fatalf("PUT fault: %d %s", code, body)
	}
	want := Fault{ErrorRate: 0.2, LatencyMs: 300, LatencyJitterMs: 50, DownstreamCalls: 3, DownstreamLatencyMs: 200}
	if got := s.Faults()["checkout/v2"]; got != want {
		t.Fatalf("fault after PUT = %+v, want %+v", got, want)
	}

	for _, tc := range []struct {
		name, path, body string
		code             int
		mention          string
	}{
		{"unknown workload", "/faults/checkout/v9", `{"errorRate":0.5}`, http.StatusNotFound, "checkout-v9"},
		{"rate out of range", "/faults/checkout/v2", `{"errorRate":1.5}`, http.StatusBadRequest, "errorRate"},
		{"unknown field", "/faults/checkout/v2", `{"errorPercent":50}`, http.StatusBadRequest, "errorPercent"},
		{"not JSON", "/faults/checkout/v2", `error=0.5`, http.StatusBadRequest, "JSON"},
		{"trailing data", "/faults/checkout/v2", `{"errorRate":0.5} {}`, http.StatusBadRequest, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, http.MethodPut, base+tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.mention) {
				t.Errorf("PUT %s %s = %d %s, want %d mentioning %q", tc.path, tc.body, code, body, tc.code, tc.mention)
			}
			if got := s.Faults(); len(got) != 1 || got["checkout/v2"] != want {
				t.Errorf("a refused PUT changed the faults: %+v", got)
			}
		})
	}

	code, body := do(t, http.MethodGet, base+"/faults", "")
	var listed map[string]Fault
	if err := json.Unmarshal([]byte(body), &listed); code != http.StatusOK || err != nil || listed["checkout/v2"] != want {
		t.Errorf("GET /faults = %d %s (%v), want checkout/v2 %+v", code, body, err, want)
	}
	if code, body := do(t, http.MethodDelete, base+"/faults/checkout/v2", ""); code != http.StatusNoContent {
		t.Errorf("DELETE fault: %d %s", code, body)
	}
	if len(s.Faults()) != 0 {
		t.Errorf("faults after DELETE: %+v", s.Faults())
	}

	if code, body := do(t, http.MethodPut, base+"/load", `{"rps":5000}`); code != http.StatusBadRequest {
		t.Errorf("PUT /load rps 5000 = %d %s, want 400", code, body)
	}
	if code, body := do(t, http.MethodPut, base+"/load", `{"rps":7}`); code != http.StatusOK {
		t.Errorf("PUT /load = %d %s", code, body)
	}
	if code, body := do(t, http.MethodGet, base+"/load", ""); code != http.StatusOK || !strings.Contains(body, `"rps":7`) {
		t.Errorf("GET /load = %d %s, want rps 7", code, body)
	}
	if code, body := do(t, http.MethodGet, base+"/workloads", ""); code != http.StatusOK || !strings.Contains(body, "checkout-v2") {
		t.Errorf("GET /workloads = %d %s", code, body)
	}
}
