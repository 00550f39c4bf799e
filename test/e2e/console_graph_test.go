package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// TestConsoleGraphMarksTheFailingHop: on the real stack and controller,
// checkout v2 makes slow calls to payments while its own traffic stays
// fine, and the rollout is rolled back for that hop. Its page, open from
// the start, shows the graph's checkout → payments edge marked failing
// (a link, labelled so, coloured as a failure) with both versions'
// values, and the inbound edge not failing; the hop's chart has its limit
// line and the rollback mark, and the banner lists the hop's values with
// the limit and "×N the limit"; the console logs no error.
func TestConsoleGraphMarksTheFailingHop(t *testing.T) {
	b := newBrowser(t)
	e := newMeshEnv(t, 50, "")
	e.fault("v2", meshsim.Fault{DownstreamCalls: 3, DownstreamLatencyMs: 250})
	e.startController()
	srv := consoleServer(t, e.env)
	b.login(srv.URL, consoleOperatorToken)
	e.rollout("amp", analysed(30*time.Second, func(a *v1alpha1.AnalysisSpec) { a.Traces = &v1alpha1.TraceChecks{Disabled: true} }))
	b.do(chromedp.Navigate(srv.URL + "/rollouts/" + e.ns + "/amp"))
	b.waitJS(`document.getElementById('phase').textContent === 'RolledBack'`, 50*time.Second, "amp rolled back on the page")
	const hop = "checkout → payments"
	b.waitJS(`document.querySelector('#graph a.failing[data-hop="`+hop+`"]') !== null`, 5*time.Second, "the failing hop marked in the graph")
	var edges map[string]struct {
		Tag   string `json:"tag"`
		Cls   string `json:"cls"`
		Label string `json:"label"`
		Text  string `json:"text"`
	}
	must(t, json.Unmarshal([]byte(b.eval(`JSON.stringify(Object.fromEntries([...document.querySelectorAll('#graph .edge')].map((e) =>
		[e.dataset.hop, {tag: e.tagName, cls: e.getAttribute('class'), label: e.getAttribute('aria-label') || '', text: e.textContent}])))`)), &edges))
	f, ok := edges[hop]
	if !ok {
		t.Fatalf("the graph has no edge %s: %v", hop, edges)
	}
	if f.Tag != "a" || !strings.Contains(f.Cls, "failing") || !strings.Contains(f.Cls, "state-fail") || !strings.HasPrefix(f.Label, "Failing edge "+hop+", from metrics: fail.") {
		t.Errorf("edge %s is a %s of class %q labelled %q, want a failing link", hop, f.Tag, f.Cls, f.Label)
	}
	for _, w := range []string{"req/s", "ms", "%"} {
		if !strings.Contains(f.Text, w) {
			t.Errorf("edge %s reads %q, with no %q value", hop, f.Text, w)
		}
	}
	if in := edges["inbound"]; strings.Contains(in.Cls, "failing") || in.Tag == "a" {
		t.Errorf("the inbound edge is marked failing (%q) when only the hop failed", in.Cls)
	}
	// The failing hop has its chart, with the limit line and the
	// rollback drawn across it, and the banner lists its values with the
	// limit and how far over it the canary went.
	chart := `document.querySelector('#charts figure.failing-hop[data-check^="latency-p99|` + hop + `|"]')`
	b.waitJS(chart+` !== null && `+chart+`.querySelector('path.line.limit') !== null && `+chart+`.querySelector('.mark-end') !== null`,
		5*time.Second, "the failing hop's chart with its limit line and the rollback mark")
	var failure string
	for _, li := range strings.Split(b.eval(`[...document.querySelectorAll('#failures li')].map((li) => li.textContent).join('\n')`), "\n") {
		if strings.HasPrefix(li, "latency-p99 "+hop) {
			failure = li
		}
	}
	for _, w := range []string{"· metrics", "canary ", "vs stable ", "limit ", " the limit)", "since the analysis began"} {
		if !strings.Contains(failure, w) {
			t.Errorf("the banner's line for latency-p99 on %s reads %q, without %q", hop, failure, w)
		}
	}
	if !strings.Contains(failure, "(×") {
		t.Errorf("the banner's line for latency-p99 on %s does not say how far over the limit it is: %q", hop, failure)
	}
	b.screenshot("graph-hop-rollback")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}
