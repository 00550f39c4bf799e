package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// samplerJS records what the rollout page shows, as a person would read
// it, at every change of the page (a MutationObserver) and every 100 ms:
// "phase weight controls retry pending", controls being how many controls
// of a running rollout are visible (five: pause, resume, promote and the
// abort form with its button), and retry "retry" when Retry is.
const samplerJS = `(() => {
	const visible = (sel) => [...document.querySelectorAll(sel)].filter((n) => n.checkVisibility()).length;
	const controls = () => visible('#abort-form, button[data-op]:not([data-op=retry])');
	const retry = () => (visible('#op-retry') ? 'retry' : '-');
	const pending = () => { const p = document.getElementById('pending'); return p.hidden ? '-' : p.textContent; };
	window.samples = [];
	const sample = () => window.samples.push([document.getElementById('phase').textContent, document.getElementById('weight').textContent, controls(), retry(), pending()].join(' '));
	new MutationObserver(sample).observe(document.getElementById('rollout'), {subtree: true, childList: true, characterData: true, attributes: true});
	setInterval(sample, 100);
	sample();
	return '';
})()`

// samples returns the page's samples so far.
func (b *browser) samples() []string {
	b.t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(b.eval(`JSON.stringify(window.samples || [])`)), &out); err != nil {
		b.t.Fatalf("samples: %v", err)
	}
	return out
}

// holdsAfter checks the samples from the first that starts with phase:
// every later one must read want, the final state, and never an older
// one. It returns how many samples that was, and the samples before.
func holdsAfter(t *testing.T, samples []string, phase, want string) (int, []string) {
	t.Helper()
	first := -1
	for i, s := range samples {
		if strings.HasPrefix(s, phase+" ") {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("the page never showed %s: %v", phase, samples)
	}
	for i, s := range samples[first:] {
		if s != want {
			t.Fatalf("sample %d after the page first showed %s reads %q, want %q: %v", i, phase, s, want, samples[first:])
		}
	}
	return len(samples) - first, samples[:first]
}

// phoneJS measures a page at phone width: how wide the document is, and
// the smallest chart text as drawn on the screen.
const phoneJS = `JSON.stringify((() => {
	const px = [...document.querySelectorAll('svg.plot text')].map((t) => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getScreenCTM().a);
	return {scrollWidth: document.documentElement.scrollWidth, texts: px.length, smallest: px.length ? Math.min(...px) : 0};
})())`

// atPhoneWidth checks the page as it is at 390×844: no sideways scroll,
// and chart text of at least 10 px on the screen.
func (b *browser) atPhoneWidth(what string) {
	b.t.Helper()
	var m struct {
		ScrollWidth float64 `json:"scrollWidth"`
		Texts       int     `json:"texts"`
		Smallest    float64 `json:"smallest"`
	}
	if err := json.Unmarshal([]byte(b.eval(phoneJS)), &m); err != nil {
		b.t.Fatalf("measure %s: %v", what, err)
	}
	if m.ScrollWidth > 390 {
		b.t.Errorf("%s is %vpx wide at 390px", what, m.ScrollWidth)
	}
	if m.Texts > 0 && m.Smallest < 10 {
		b.t.Errorf("%s's chart text is %.1fpx on the screen, want at least 10px", what, m.Smallest)
	}
}

// TestConsoleTellsTheTruth drives the console in headless Chromium
// against the real controller on the local stack, sampling what the
// rollout page shows at every change and every 100 ms:
//   - after Abort it says "aborting…", then Aborted with Retry its only
//     control, with no reload, and for the 5 s after never anything older;
//   - Retry asks first, says "retrying…", and the rollout runs again with
//     the controls of a running rollout;
//   - a viewer sees no controls on a running rollout;
//   - at 390×844 the list and a running rollout's page do not scroll
//     sideways, and the charts' text is readable;
//   - Promote asks first, naming 100%: Cancel writes nothing, and
//     confirming says "promoting…" until the rollout has Succeeded;
//   - the browser console stays free of errors.
func TestConsoleTellsTheTruth(t *testing.T) {
	b := newBrowser(t)
	e := newMeshEnv(t, 50, "")
	e.startController()
	srv := consoleServer(t, e.env)
	base := srv.URL
	page := func(name string) string { return base + "/rollouts/" + e.ns + "/" + name }
	b.login(base, consoleOperatorToken)

	// 1. Abort: the stream's news wins over the POST's answer, for good.
	startByAPI(t, base, e.env, "doomed", time.Minute)
	b.do(chromedp.Navigate(page("doomed")))
	b.waitJS(`document.getElementById('phase').textContent === 'Progressing' && document.getElementById('live').classList.contains('on')`,
		30*time.Second, "doomed to progress, live")
	b.eval(`window.serinMarker = "same page"; ""`)
	b.eval(samplerJS)
	b.do(chromedp.SendKeys(chromedp.CSS("#abort-reason"), "bad build"), chromedp.Click(chromedp.CSS("#op-abort")))
	b.waitJS(`document.getElementById('phase').textContent === 'Aborted'`, 30*time.Second, "Aborted on the page")
	time.Sleep(5 * time.Second) // the page is sampled meanwhile
	n, before := holdsAfter(t, b.samples(), "Aborted", "Aborted 0% 0 retry -")
	if n < 40 {
		t.Errorf("only %d samples in the 5 s after Aborted", n)
	}
	if !strings.Contains(strings.Join(before, "\n"), "aborting…") {
		t.Errorf("the page never said aborting… between the click and Aborted: %v", before)
	}
	if m := b.eval(`window.serinMarker || ""`); m != "same page" {
		t.Error("the page reloaded to show the abort")
	}
	if ro := e.get("doomed"); ro.Status.Phase != v1alpha1.PhaseAborted {
		t.Errorf("doomed is %s after the button, want Aborted", ro.Status.Phase)
	}
	b.screenshot("truth-aborted")
	e.waitRouteRestored("doomed")

	// 2. Retry asks first, then runs the rollout again: the controls of a
	// running rollout come back, and Retry goes.
	b.do(chromedp.Click(chromedp.CSS("#op-retry")))
	b.waitJS(`document.getElementById('confirm-dialog').open`, 10*time.Second, "the retry confirmation")
	if text := b.eval(`document.getElementById('confirm-dialog').innerText`); !strings.Contains(text, "Retry from 10%") {
		t.Errorf("the retry confirmation reads %q, want it to name 10%%", text)
	}
	b.eval(samplerJS)
	b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitJS(`document.getElementById('phase').textContent === 'Progressing'`, 60*time.Second, "doomed to progress again")
	_, before = holdsAfter(t, b.samples(), "Progressing", "Progressing 10% 5 - -")
	if !strings.Contains(strings.Join(before, "\n"), "retrying…") {
		t.Errorf("the page never said retrying… between the confirmation and Progressing: %v", before)
	}
	if ro := e.get("doomed"); ro.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("doomed is %s after Retry, want Progressing", ro.Status.Phase)
	}
	b.screenshot("truth-retried")
	if code, body := apiCall(t, http.MethodPost, base+"/api/v1/rollouts/"+e.ns+"/doomed/abort", consoleOperatorToken,
		map[string]string{"reason": "make room for the next test"}); code != http.StatusOK {
		t.Fatalf("abort doomed through the API: %d %s", code, body)
	}
	e.waitPhase("doomed", v1alpha1.PhaseAborted, 30*time.Second)
	e.waitRouteRestored("doomed")

	// 3. A running rollout, seen by a viewer, then at phone width.
	startByAPI(t, base, e.env, "watched", time.Minute)
	b.logout()
	b.login(base, consoleViewerToken)
	b.do(chromedp.Navigate(page("watched")))
	b.waitJS(`document.getElementById('phase').textContent === 'Progressing' && document.querySelectorAll('svg.plot text').length > 0 && document.getElementById('hops').rows.length > 0`,
		60*time.Second, "watched to progress, with charts and hops")
	if n := b.eval(`String(document.querySelectorAll("#controls, button[data-op], #abort-form, #confirm-dialog").length)`); n != "0" {
		t.Errorf("the viewer's page of a running rollout has %s operator controls", n)
	}
	b.screenshot("truth-viewer")
	b.do(chromedp.EmulateViewport(390, 844))
	b.waitJS(`document.documentElement.clientWidth === 390`, 10*time.Second, "the phone viewport")
	b.waitJS(`[...document.querySelectorAll('svg.plot')].every((s) => Math.abs(s.viewBox.baseVal.width - s.getBoundingClientRect().width) < 1 && s.viewBox.baseVal.width < 390)`,
		10*time.Second, "the charts drawn again at phone width")
	b.atPhoneWidth("the rollout page")
	b.screenshot("truth-phone-rollout")
	b.do(chromedp.Navigate(base + "/"))
	b.waitJS(`document.getElementById('list').dataset.loaded === 'true' && document.querySelectorAll('#rows tr.row').length === 2`, 30*time.Second, "the list")
	b.atPhoneWidth("the list")
	b.screenshot("truth-phone-list")
	b.do(chromedp.EmulateViewport(1280, 800))
	if code, body := apiCall(t, http.MethodPost, base+"/api/v1/rollouts/"+e.ns+"/watched/abort", consoleOperatorToken,
		map[string]string{"reason": "make room for the next test"}); code != http.StatusOK {
		t.Fatalf("abort watched through the API: %d %s", code, body)
	}
	e.waitPhase("watched", v1alpha1.PhaseAborted, 30*time.Second)
	e.waitRouteRestored("watched")
	b.logout()
	b.login(base, consoleOperatorToken)

	// 4. Promote asks first, naming the weight it sets.
	startByAPI(t, base, e.env, "promoted", time.Minute)
	b.do(chromedp.Navigate(page("promoted")))
	b.waitJS(`document.getElementById('phase').textContent === 'Progressing' && document.getElementById('live').classList.contains('on')`,
		30*time.Second, "promoted to progress, live")
	b.do(chromedp.Click(chromedp.CSS("#op-promote")))
	b.waitJS(`document.getElementById('confirm-dialog').open`, 10*time.Second, "the promote confirmation")
	if text := b.eval(`document.getElementById('confirm-dialog').innerText`); !strings.Contains(text, "100%") || !strings.Contains(text, "v2 takes 100% of the traffic") {
		t.Errorf("the confirmation reads %q, want it to name 100%% for v2", text)
	}
	b.screenshot("truth-promote-confirm")
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.waitJS(`!document.getElementById('confirm-dialog').open`, 10*time.Second, "the confirmation to close")
	if ro := e.get("promoted"); ro.Annotations[v1alpha1.AnnotationPromote] != "" || ro.Status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("after Cancel promoted is %s with promote=%q, want Progressing and no request", ro.Status.Phase, ro.Annotations[v1alpha1.AnnotationPromote])
	}
	b.eval(samplerJS)
	b.do(chromedp.Click(chromedp.CSS("#op-promote")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitJS(`document.getElementById('phase').textContent === 'Succeeded'`, 30*time.Second, "Succeeded on the page")
	time.Sleep(2 * time.Second) // the page is sampled meanwhile
	_, before = holdsAfter(t, b.samples(), "Succeeded", "Succeeded 100% 0 - -")
	if !strings.Contains(strings.Join(before, "\n"), "promoting…") {
		t.Errorf("the page never said promoting… between the confirmation and Succeeded: %v", before)
	}
	if ro := e.get("promoted"); ro.Status.Phase != v1alpha1.PhaseSucceeded || ro.Status.CanaryWeight != 100 {
		t.Errorf("promoted is %s at %d%%, want Succeeded at 100%%", ro.Status.Phase, ro.Status.CanaryWeight)
	}

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}
