package istioexporter

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestControlAPI(t *testing.T) {
	e := testExporter(t, 2, 1)
	e.services[1].canary.Store(10)
	srv := httptest.NewServer(e.controlHandler())
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := do("PUT", "/faults/service-0002/v2", `{"errorRate":0.5}`); code != 200 {
		t.Fatalf("PUT a fault: %d %s", code, body)
	}
	if got := e.Faults(); len(got) != 1 || got["service-0002/v2"].ErrorRate != 0.5 {
		t.Errorf("faults after PUT: %v", got)
	}
	for _, c := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/faults/service-0002/v2", `{"errorRate":1.5}`, 400, "errorRate 1.5"},
		{"/faults/service-0002/v2", `{"errorRate":0.1,"latencyMs":5}`, 400, "latencyMs"},
		{"/faults/service-0002/v2", `{"errorRate":0.1} {}`, 400, "trailing"},
		{"/faults/service-0009/v2", `{"errorRate":0.1}`, 404, "service-0009"},
		{"/faults/service-0002/v3", `{"errorRate":0.1}`, 404, "v3"},
	} {
		code, body := do("PUT", c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("PUT %s %s: %d %s; want %d naming %q", c.path, c.body, code, body, c.code, c.want)
		}
	}
	if got := e.Faults(); len(got) != 1 || got["service-0002/v2"].ErrorRate != 0.5 {
		t.Errorf("a refused PUT changed the faults: %v", got)
	}

	code, body := do("GET", "/weights", "")
	var weights map[string]int32
	if err := json.Unmarshal([]byte(body), &weights); code != 200 || err != nil {
		t.Fatalf("GET /weights: %d %s (%v)", code, body, err)
	}
	if weights["service-0001"] != -1 || weights["service-0002"] != 10 {
		t.Errorf("GET /weights = %v, want service-0001 -1 (no route) and service-0002 10", weights)
	}

	if code, _ := do("DELETE", "/faults/service-0002/v2", ""); code != 204 || len(e.Faults()) != 0 {
		t.Errorf("DELETE one fault: %d, faults %v", code, e.Faults())
	}
	_ = e.SetFault("service-0001", "v1", Fault{ErrorRate: 0.2})
	if code, _ := do("DELETE", "/faults", ""); code != 204 || len(e.Faults()) != 0 {
		t.Errorf("DELETE all faults: %d, faults %v", code, e.Faults())
	}
}
