package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// TestConsoleTraceOfALatencyRollback: payments answers checkout v2's calls
// 250 ms slower; the real controller (its API and console on, --jaeger-url
// the real Jaeger the mesh simulator traces into, the hop judged from
// traces only) rolls it back. On the rollout's page in headless Chromium,
// the example trace of the failing checkout → payments trace check opens
// as a waterfall read through the controller's API from Jaeger: checkout
// v2's slow downstream call is marked as the slowest canary call,
// highlighted as the canary's, and takes the 250 ms; at 390×844 the page
// does not scroll sideways; the browser console stays free of errors.
func TestConsoleTraceOfALatencyRollback(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(consoleOperatorToken+",olga,operator\n"+consoleViewerToken+",vic,viewer\n"), 0o600))
	e.extraArgs = []string{"--auth", "static", "--api-token-file", tokens}
	e.fault("v2", meshsim.Fault{DownstreamLatencyMs: 250})
	p := e.startController()
	b := newBrowser(t)
	e.rollout("slow", analysed(30*time.Second, func(a *v1alpha1.AnalysisSpec) { a.Hops = &v1alpha1.HopChecks{Disabled: true} }))
	e.waitPhase("slow", v1alpha1.PhaseRolledBack, 60*time.Second)
	// The API answers from its read model, which follows the API server a
	// moment behind: the trace is read as a user of the console finds it,
	// from the rolled-back status the controller's own API shows.
	base := "http://" + p.addr
	ro := apiRolledBack(t, base+"/api/v1/rollouts/"+e.ns+"/slow", 10*time.Second)

	var id string
	for _, c := range ro.Status.Analysis.Checks {
		if c.Source == "jaeger" && c.Hop == "checkout → payments" && c.TraceID != "" && (id == "" || c.Verdict == "Fail") {
			id = c.TraceID
		}
	}
	if id == "" {
		t.Fatalf("no trace check on checkout → payments names an example trace: %+v", ro.Status.Analysis.Checks)
	}

	// The API answers the viewer from the real Jaeger.
	code, body := apiCall(t, http.MethodGet, base+"/api/v1/rollouts/"+e.ns+"/slow/traces/"+id, consoleViewerToken, nil)
	if code != http.StatusOK {
		t.Fatalf("GET the trace through the controller's API: %d %s", code, body)
	}
	var tv struct {
		Marked, Mark, Hop string
		Spans             []struct {
			SpanID, Service, Version string
			DurationUs               int64
		}
	}
	must(t, json.Unmarshal([]byte(body), &tv))
	var marked string
	for _, s := range tv.Spans {
		if s.SpanID == tv.Marked {
			marked = s.Service + " " + s.Version + " " + strconv.FormatInt(s.DurationUs/1000, 10)
			if s.Version != "canary" || s.DurationUs < 250_000 {
				t.Errorf("the marked span is %s (%s µs), want a canary span of at least 250 ms", marked, strconv.FormatInt(s.DurationUs, 10))
			}
		}
	}
	// The same slow trace may be the example of several failing hops
	// (payments and inventory are both slow to v2): the API marks the
	// call on the first failing one.
	failingHop := false
	for _, c := range ro.Status.Analysis.Checks {
		failingHop = failingHop || (c.Source == "jaeger" && c.Verdict == "Fail" && c.TraceID == id && c.Hop == tv.Hop)
	}
	if marked == "" || !failingHop || !strings.HasPrefix(tv.Hop, "checkout → ") {
		t.Fatalf("hop %q, marked %q among %d spans: want a marked span on a failing hop from checkout", tv.Hop, tv.Marked, len(tv.Spans))
	}
	t.Logf("trace %s: %d spans, marked %s ms (%s)", id, len(tv.Spans), marked, tv.Mark)

	// The console draws it.
	b.login(base, consoleViewerToken)
	b.do(chromedp.EmulateViewport(390, 844))
	b.do(chromedp.Navigate(base + "/rollouts/" + e.ns + "/slow"))
	sel := `#hops button.trace-open[data-trace="` + id + `"]`
	b.waitJS(`document.querySelector('`+sel+`')`, 15*time.Second, "the hop's example trace button")
	b.do(chromedp.Click(chromedp.CSS(sel)))
	b.waitJS(`document.querySelector('#trace .waterfall .span-marked')`, 15*time.Second, "the waterfall with its marked span")
	row := b.eval(`(() => { const li = document.querySelector('#trace .span-marked');
		return [li.className, li.querySelector('.span-name').textContent, li.querySelector('.span-dur').textContent, li.querySelector('.span-mark').textContent].join(' | '); })()`)
	parts := strings.Split(row, " | ")
	if len(parts) != 4 || !strings.Contains(parts[0], "span-canary") || !strings.HasPrefix(parts[1], "checkout · ") ||
		parts[3] != "slowest canary call on "+tv.Hop {
		t.Errorf("the marked row reads %q, want checkout's canary span labelled the slowest canary call on %s", row, tv.Hop)
	}
	if len(parts) == 4 {
		ms, err := strconv.ParseFloat(strings.TrimSuffix(parts[2], " ms"), 64)
		if err != nil || ms < 250 {
			t.Errorf("the marked span's duration reads %q, want at least 250 ms", parts[2])
		}
	}
	if n := b.eval(`String(document.querySelectorAll('#trace .waterfall > li').length)`); n != strconv.Itoa(len(tv.Spans)) {
		t.Errorf("the waterfall has %s rows, the trace %d spans", n, len(tv.Spans))
	}
	if w := b.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
		if n, _ := strconv.Atoi(w); n > 390 {
			t.Errorf("the page is %spx wide at 390px with the waterfall open", w)
		}
	}
	b.screenshot("trace-rollback-phone")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// apiRolledBack polls GET url (one rollout) as the viewer until the API's
// read model shows the rollout rolled back, and returns it; it fails the
// test after within.
func apiRolledBack(t *testing.T, url string, within time.Duration) *v1alpha1.Rollout {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := apiCall(t, http.MethodGet, url, consoleViewerToken, nil)
		var view struct {
			Status v1alpha1.RolloutStatus `json:"status"`
		}
		if code == http.StatusOK {
			must(t, json.Unmarshal([]byte(body), &view))
			if view.Status.Phase == v1alpha1.PhaseRolledBack {
				return &v1alpha1.Rollout{Status: view.Status}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: the API does not show the rollout rolled back within %s: %d %s", url, within, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
