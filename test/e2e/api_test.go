package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

const (
	apiOperator = "op-token-e2e"
	apiViewer   = "view-token-e2e"
)

// apiEnv runs the controller binary with its REST API on (static tokens).
func apiEnv(t *testing.T) (*env, *controllerProc) {
	t.Helper()
	e := newEnv(t)
	e.mesh(nil)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(apiOperator+",olga,operator\n"+apiViewer+",victor,viewer\n"), 0o600))
	e.analysisArgs = []string{"--no-analysis", "--auth", "static", "--api-token-file", tokens}
	return e, e.startController()
}

func apiDo(t *testing.T, p *controllerProc, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+p.addr+path, rd)
	must(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestAPIOverTheRealEngine drives one rollout through the controller's own
// REST API while its engine carries out every request.
func TestAPIOverTheRealEngine(t *testing.T) {
	e, p := apiEnv(t)
	base := "/api/v1/rollouts/" + e.ns + "/api"
	code, body := apiDo(t, p, http.MethodPost, "/api/v1/rollouts", apiOperator, map[string]any{
		"namespace": e.ns, "name": "api",
		"spec": map[string]any{"virtualService": "checkout", "stableSubset": "v1", "canarySubset": "v2", "stepInterval": "2s",
			"analysis": map[string]any{"interval": "1s"}},
	})
	if code != http.StatusCreated {
		t.Fatalf("POST /rollouts: %d %v", code, body)
	}
	if code, _ := apiDo(t, p, http.MethodPost, base+"/abort", apiViewer, map[string]string{"reason": "no"}); code != http.StatusForbidden {
		t.Errorf("a viewer's abort: %d, want 403", code)
	}

	events := streamWeights(t, p, base+"/events")
	e.eventually(30*time.Second, "the stream to show weight 10", func() (bool, string) { return events.has(10), fmt.Sprint(events.get()) })

	steps := []struct {
		op    string
		body  any
		phase v1alpha1.Phase
	}{
		{"pause", nil, v1alpha1.PhasePaused},
		{"resume", nil, v1alpha1.PhaseProgressing},
		{"promote", nil, v1alpha1.PhaseSucceeded},
	}
	for _, s := range steps {
		if code, body := apiDo(t, p, http.MethodPost, base+"/"+s.op, apiOperator, s.body); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", s.op, code, body)
		}
		e.waitPhase("api", s.phase, 20*time.Second)
		code, body := apiDo(t, p, http.MethodGet, base, apiViewer, nil)
		status, _ := body["status"].(map[string]any)
		if code != http.StatusOK || status["phase"] != string(s.phase) {
			// The read model follows the informer; give it a moment.
			e.eventually(5*time.Second, "GET to show "+string(s.phase), func() (bool, string) {
				_, body := apiDo(t, p, http.MethodGet, base, apiViewer, nil)
				st, _ := body["status"].(map[string]any)
				return st["phase"] == string(s.phase), fmt.Sprint(st["phase"])
			})
		}
	}
	e.eventually(10*time.Second, "the stream to show weight 100", func() (bool, string) { return events.has(100), fmt.Sprint(events.get()) })
	if code, _ := apiDo(t, p, http.MethodPost, base+"/abort", apiOperator, map[string]string{"reason": "too late"}); code != http.StatusConflict {
		t.Errorf("abort of a finished rollout: %d, want 409", code)
	}
}

// TestAPIAbortReturnsTraffic: an abort through the API returns the route
// to 100/0 and the history says who and why.
func TestAPIAbortReturnsTraffic(t *testing.T) {
	e, p := apiEnv(t)
	e.rollout("victim", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(time.Minute) })
	e.eventually(30*time.Second, "weight 10 applied", func() (bool, string) {
		ro := e.get("victim")
		return ro.Status.AppliedWeight == 10, fmt.Sprint(ro.Status.AppliedWeight)
	})
	code, body := apiDo(t, p, http.MethodPost, "/api/v1/rollouts/"+e.ns+"/victim/abort", apiOperator, map[string]string{"reason": "smoke seen"})
	if code != http.StatusOK {
		t.Fatalf("abort: %d %v", code, body)
	}
	ro := e.waitPhase("victim", v1alpha1.PhaseAborted, 10*time.Second)
	if !strings.Contains(ro.Status.Message, "aborted by olga: smoke seen") {
		t.Errorf("message %q does not say who aborted and why", ro.Status.Message)
	}
	e.waitRouteRestored("victim")
	if s, c := weights(e.vs(), "primary"); s != 100 || c != 0 {
		t.Errorf("route %d/%d after the abort, want 100/0", s, c)
	}
}

// streamWeights reads an SSE stream of a rollout and records the canary
// weights it reports.
func streamWeights(t *testing.T, p *controllerProc, path string) *weightLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+apiViewer)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET %s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	l := &weightLog{}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct {
				Status struct {
					CanaryWeight int32 `json:"canaryWeight"`
				} `json:"status"`
			}
			if json.Unmarshal([]byte(data), &ev) == nil {
				l.mu.Lock()
				if len(l.ws) == 0 || l.ws[len(l.ws)-1] != ev.Status.CanaryWeight {
					l.ws = append(l.ws, ev.Status.CanaryWeight)
					l.ats = append(l.ats, time.Now())
				}
				l.mu.Unlock()
			}
		}
	}()
	return l
}
