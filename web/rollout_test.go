package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// healthyReason is the latest reason of a canary still gathering
// evidence: one clause per check, the "yellow wall" the page must not
// show.
var healthyReason = strings.Repeat("error-rate (inbound): 3 canary and 40 stable requests so far, need 20 of each; ", 9)

// rolledBackMessage is the engine's long message of a rollback, which
// the page shows once.
const rolledBackMessage = "rolled back: error-rate (inbound) failed: error rate canary 16.7% [2.89–43.6%] vs stable 0% [0–2.33%], " +
	"evidence 1/α reached at 8.02 s; traffic returned to stable (100/0)"

// seedPages stores, besides shop/checkout-v2, a healthy canary gathering
// evidence (with a hop skipped before it had data) and a rolled-back one.
func seedPages(t testing.TB, store *readmodel.Store) {
	t.Helper()
	seedCheckout(t, store)
	tick := metav1.NewTime(time.Now().Add(-2 * time.Second))
	started := metav1.NewTime(time.Now().Add(-time.Minute))
	healthy := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "healthy", ResourceVersion: "100", CreationTimestamp: started},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
		Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, CanaryWeight: 25, Message: "advanced to step 1: canary weight 25%",
			Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Inconclusive", LastReason: healthyReason, LastTickAt: &tick, Checks: []v1alpha1.CheckStatus{
				{Check: "error-rate", Source: "prometheus", Kind: "error-rate", Verdict: "Pass", Canary: 0.4, Stable: 0.3, Limit: 1, Unit: "%", CanaryRequests: 900, StableRequests: 2700},
				{Check: "latency-p99", Source: "prometheus", Kind: "latency-p99", Verdict: "Inconclusive", Unit: "ms", CanaryRequests: 3, StableRequests: 40,
					Reason: "latency-p99 (inbound): 3 canary and 40 stable requests so far, need 20 of each"},
				{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Kind: "latency-p99", Verdict: "Skipped", Unit: "ms",
					Reason: "latency-p99 on checkout → payments from traces: not judged"},
				{Check: "latency-p99", Hop: "checkout → inventory", Source: "jaeger", Kind: "latency-p99", Verdict: "Pass",
					Canary: 320.4, Stable: 79.96, Limit: 400, Unit: "ms", CanaryRequests: 50, StableRequests: 150, TraceID: "abc123"},
			}},
			History: []v1alpha1.Transition{
				{Time: started, From: "Pending 0 (0%)", To: "Progressing 0 (10%)", Reason: "Started", Message: "started: canary weight 10%"},
				{Time: tick, From: "Progressing 0 (10%)", To: "Progressing 1 (25%)", Reason: "StepAdvanced", Message: "advanced to step 1: canary weight 25%"},
			},
		},
	}
	fell := healthy.DeepCopy()
	fell.Name, fell.ResourceVersion = "fell", "200"
	fell.Status.Phase, fell.Status.CanaryWeight, fell.Status.CurrentStep, fell.Status.Message = v1alpha1.PhaseRolledBack, 0, 0, rolledBackMessage
	fell.Status.Analysis.LastVerdict, fell.Status.Analysis.LastReason = "Fail", rolledBackMessage
	fell.Status.Analysis.Checks = append(fell.Status.Analysis.Checks[1:],
		v1alpha1.CheckStatus{Check: "error-rate", Source: "prometheus", Kind: "error-rate", Verdict: "Fail", Canary: 16.6667, CanaryLow: 2.891, CanaryHigh: 43.56,
			Stable: 0, StableHigh: 2.33, Limit: 0.5, Unit: "%", CanaryRequests: 30, StableRequests: 270})
	fell.Status.History = []v1alpha1.Transition{fell.Status.History[0],
		{Time: tick, From: "Progressing 0 (10%)", To: "RolledBack 0 (0%)", Reason: "RolledBack", Message: rolledBackMessage}}
	for _, r := range []*v1alpha1.Rollout{healthy, fell} {
		if err := store.Upsert(r); err != nil {
			t.Fatal(err)
		}
	}
}

// visibleControlsJS counts the operator's controls a person can see.
const visibleControlsJS = `[...document.querySelectorAll('#controls, #controls button, #abort-form, button[data-op]')].filter((n) => n.checkVisibility()).length`

// runningControlsJS counts the visible controls of a running rollout:
// all but Retry.
const runningControlsJS = `[...document.querySelectorAll('#abort-form, button[data-op]:not([data-op=retry])')].filter((n) => n.checkVisibility()).length`

// retryShownJS says whether Retry is visible.
const retryShownJS = `(document.getElementById('op-retry') || {checkVisibility: () => false}).checkVisibility()`

// occurrencesJS counts how often a text is on the page, as a person reads it.
func occurrencesJS(s string) string {
	return fmt.Sprintf(`document.body.innerText.split(%q).length - 1`, s)
}

// TestRolloutPageTellsEachThingOnce draws a healthy canary and a
// rolled-back one in Chromium: an undecided analysis reads as one calm
// line, not a wall of reasons; a hop skipped before it had data says "no
// data", not zeros; values have three significant figures and units; the
// engine's message is on the page once; the rollback lists its failing
// check from the check's fields; a finished rollout has no controls.
func TestRolloutPageTellsEachThingOnce(t *testing.T) {
	f := newFixtureWith(t, false, seedPages)
	b := newBrowser(t)
	b.login(f.srv.URL, operatorToken)

	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/healthy"))
	b.waitFor(`document.getElementById('hops').rows.length === 3 && document.querySelector('#charts figure') !== null`,
		`document.getElementById('hops').innerText`, 10*time.Second, "the analysis of healthy")
	if v := eval[string](b, `document.getElementById('verdict').textContent + ' | ' + document.getElementById('summary').textContent`); !strings.HasPrefix(v, "Gathering evidence | ") || strings.Contains(v, ";") {
		t.Errorf("latest analysis reads %q, want one calm line that starts with Gathering evidence", v)
	}
	if n := eval[int](b, `document.querySelectorAll('.verdict-inconclusive').length`); n != 0 {
		t.Errorf("%d inconclusive (yellow) labels on a healthy canary", n)
	}
	if n := eval[int](b, occurrencesJS("need 20 of each")); n != 0 {
		t.Errorf("the reasons of undecided checks are on the page %d times, want none", n)
	}
	hops := eval[string](b, `document.getElementById('hops').innerText`)
	for _, want := range []string{"no data", "320 ms / 80 ms", "0.4% / 0.3%"} {
		if !strings.Contains(hops, want) {
			t.Errorf("the per-hop table lacks %q:\n%s", want, hops)
		}
	}
	if strings.Contains(hops, "0 ms / 0 ms") || strings.Contains(hops, "0.0 ms") {
		t.Errorf("the per-hop table shows zeros for a check with no data:\n%s", hops)
	}
	// The example trace opens on the page (trace.js), not in a Jaeger UI.
	if id := eval[string](b, `(document.querySelector('#hops button.trace-open') || {dataset: {}}).dataset.trace || ''`); id != "abc123" {
		t.Errorf("the example trace's button opens %q, want abc123", id)
	}
	if n := eval[int](b, `document.querySelectorAll('#hops a').length`); n != 0 {
		t.Errorf("the per-hop table has %d links, want none (no Jaeger UI)", n)
	}
	if n := eval[int](b, occurrencesJS("advanced to step 1: canary weight 25%")); n != 1 {
		t.Errorf("the controller's message is on the page %d times, want once", n)
	}
	if n := eval[int](b, visibleControlsJS); n == 0 {
		t.Error("the operator sees no controls on a running rollout")
	}
	b.screenshot("healthy")

	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/fell"))
	b.waitFor(`document.querySelectorAll('#failures li').length === 1 && document.getElementById('history').rows.length === 2`,
		`document.getElementById('outcome').innerText`, 10*time.Second, "the rollback of fell")
	failure := eval[string](b, `document.querySelector('#failures li').textContent`)
	for _, want := range []string{"error-rate", "inbound · metrics", "canary 16.7% [2.89–43.6%]", "stable 0% [0–2.33%]", "limit 0.5%", "(×33.3 the limit)"} {
		if !strings.Contains(failure, want) {
			t.Errorf("the failing check reads %q, want %q in it", failure, want)
		}
	}
	if n := eval[int](b, occurrencesJS(rolledBackMessage[len("rolled back: "):])); n != 1 {
		t.Errorf("the engine's rollback message is on the page %d times, want once", n)
	}
	if n := eval[int](b, runningControlsJS); n != 0 || !eval[bool](b, retryShownJS) {
		t.Errorf("a rolled-back rollout shows %d controls of a running one and Retry %v, want Retry alone", n, eval[bool](b, retryShownJS))
	}
	b.screenshot("rolled-back")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// holdPOST holds the answers to POST requests on the path until release
// is closed, after the API has handled them: the answer then reaches the
// page after newer news from the stream, as on a slow network. posted
// receives the path of each request handled.
func holdPOST(path string, posted chan<- string, release <-chan struct{}) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != path {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			posted <- r.URL.Path
			<-release
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// TestRolloutPageDrawsNoOlderAnswer clicks Abort and holds the API's
// answer (resourceVersion 7, still Progressing) until the stream has
// brought the abort (resourceVersion 8): the page says "aborting…" from
// the click, then Aborted with Retry as its only control, and keeps that,
// sampled every 100 ms, once the older answer has arrived.
func TestRolloutPageDrawsNoOlderAnswer(t *testing.T) {
	posted, release := make(chan string, 1), make(chan struct{})
	path := "/api/v1/rollouts/shop/checkout-v2/abort"
	f := newFixtureWrapped(t, false, seedCheckout, fixtureOptions{wrap: holdPOST(path, posted, release)})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	b := newBrowser(t)
	b.login(f.srv.URL, operatorToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/checkout-v2"))
	b.waitFor(`document.getElementById('live').classList.contains('on') && document.getElementById('history').rows.length === 1`,
		`document.getElementById('live').className`, 10*time.Second, "the page to follow its stream")
	b.do(chromedp.SendKeys(chromedp.CSS("#abort-reason"), "bad build"), chromedp.Click(chromedp.CSS("#op-abort")))
	select {
	case <-posted:
	case <-time.After(10 * time.Second):
		t.Fatal("the abort was not posted")
	}
	b.waitFor(`document.getElementById('pending').textContent === 'aborting…' && document.getElementById('op-abort').disabled`,
		`document.getElementById('pending').textContent`, 5*time.Second, "aborting… after the click")

	ro, _ := f.store.Get("shop", "checkout-v2")
	ro.ResourceVersion = "8"
	ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.Message = v1alpha1.PhaseAborted, 0, "aborted by olga: bad build; traffic returned to stable (100/0)"
	ro.Status.History = append(ro.Status.History, v1alpha1.Transition{Time: metav1.Now(), From: "Progressing/1 (25%)", To: "Aborted/1 (0%)", Reason: "Aborted", Message: ro.Status.Message})
	if err := f.store.Upsert(ro); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`document.getElementById('phase').textContent === 'Aborted' && document.getElementById('pending').hidden && `+runningControlsJS+` === 0 && `+retryShownJS,
		`[document.getElementById('phase').textContent, document.getElementById('pending').textContent]`, 10*time.Second, "Aborted from the stream")

	eval[bool](b, `(() => {
		window.samples = [];
		const sample = () => window.samples.push(document.getElementById('phase').textContent + ' ' + document.getElementById('weight').textContent + ' ' + `+runningControlsJS+`);
		new MutationObserver(sample).observe(document.getElementById('rollout'), {subtree: true, childList: true, characterData: true, attributes: true});
		setInterval(sample, 100);
		return true;
	})()`)
	close(release)
	b.waitFor(fmt.Sprintf(`performance.getEntriesByType('resource').some((e) => e.name.endsWith(%q) && e.responseEnd > 0)`, path),
		`performance.getEntriesByType('resource').map((e) => e.name)`, 10*time.Second, "the held answer to reach the page")
	time.Sleep(5 * time.Second) // sample the page for 5 s after the older answer
	samples := eval[[]string](b, `window.samples`)
	if len(samples) < 40 {
		t.Fatalf("only %d samples in 5 s", len(samples))
	}
	for i, s := range samples {
		if s != "Aborted 0% 0" {
			t.Fatalf("sample %d of %d after the older answer reads %q, want Aborted 0%% with no controls: %v", i, len(samples), s, samples)
		}
	}
	b.screenshot("aborted-no-older")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPromoteAsksFirst: Promote opens a confirmation that names the
// weight it sets and the steps it skips; Cancel writes nothing; confirming
// posts the promotion once and shows "promoting…".
func TestPromoteAsksFirst(t *testing.T) {
	f := newFixture(t, false)
	b := newBrowser(t)
	b.login(f.srv.URL, operatorToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/checkout-v2"))
	b.waitFor(`document.getElementById('history').rows.length === 1`, `document.getElementById('history').innerText`, 10*time.Second, "the page to draw")
	b.do(chromedp.Click(chromedp.CSS("#op-promote")))
	b.waitFor(`document.getElementById('confirm-dialog').open`, `document.getElementById('confirm-dialog').open`, 5*time.Second, "the confirmation")
	text := eval[string](b, `document.getElementById('confirm-dialog').innerText`)
	for _, want := range []string{"Promote to 100%", "v2 takes 100% of the traffic now, from 25%", "50%, 100%"} {
		if !strings.Contains(text, want) {
			t.Errorf("the confirmation reads %q, want %q in it", text, want)
		}
	}
	if n := f.writer.count(); n != 0 {
		t.Fatalf("opening the confirmation wrote %d times", n)
	}
	b.screenshot("promote-confirm")
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.waitFor(`!document.getElementById('confirm-dialog').open && document.getElementById('pending').hidden`,
		`document.getElementById('pending').textContent`, 5*time.Second, "the confirmation to close")
	if n := f.writer.count(); n != 0 {
		t.Fatalf("Cancel wrote %d times", n)
	}
	b.do(chromedp.Click(chromedp.CSS("#op-promote")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor(`document.getElementById('pending').textContent === 'promoting…'`, `document.getElementById('pending').textContent`, 5*time.Second, "promoting…")
	deadline := time.Now().Add(5 * time.Second)
	for f.writer.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.writer.count(); n != 1 {
		t.Errorf("confirming the promotion wrote %d times, want once", n)
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestFormattingAgreesWithTheAPI holds the page's number formatting to
// analysis.FormatValue and FormatInterval, which the server-side surfaces
// (CLI, messages) use: three significant figures with units.
func TestFormattingAgreesWithTheAPI(t *testing.T) {
	f := newFixture(t, false)
	b := newBrowser(t)
	b.login(f.srv.URL, viewerToken)
	values := []float64{0, 0.00123456, 0.0249, 0.5, 1, 1.5, 7.7777, 16.6667, 23.99, 38.788, 99.95, 497.5, 999.6, 1234.5, 12345, -2.345}
	for _, unit := range []string{"", "%", "ms", "calls/req"} {
		for _, v := range values {
			got := eval[string](b, fmt.Sprintf(`serin.formatValue(%v, %q)`, v, unit))
			if want := analysis.FormatValue(v, unit); got != want {
				t.Errorf("formatValue(%v, %q) = %q in the page, %q in analysis", v, unit, got, want)
			}
		}
		for _, iv := range [][2]float64{{0, 2.33}, {2.891, 43.56}, {11.94, 12.06}, {5, 0}} {
			got := eval[string](b, fmt.Sprintf(`serin.formatInterval(%v, %v, %q)`, iv[0], iv[1], unit))
			if want := analysis.FormatInterval(iv[0], iv[1], unit); got != want {
				t.Errorf("formatInterval(%v, %v, %q) = %q in the page, %q in analysis", iv[0], iv[1], unit, got, want)
			}
		}
	}
}

// TestRetryAsksFirstAndBringsTheControlsBack: a rolled-back rollout offers
// Retry alone; Retry asks first, naming the first step's weight; Cancel
// writes nothing; a retry the API refuses (another rollout holds the
// route) says why; confirming posts the retry once and says "retrying…"
// until the stream shows the rollout Pending again, with the controls of
// a running rollout and no Retry.
func TestRetryAsksFirstAndBringsTheControlsBack(t *testing.T) {
	f := newFixtureWith(t, false, seedPages)
	b := newBrowser(t)
	b.login(f.srv.URL, operatorToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/fell"))
	b.waitFor(`document.getElementById('live').classList.contains('on') && `+retryShownJS+` && `+runningControlsJS+` === 0`,
		runningControlsJS, 10*time.Second, "Retry alone")
	b.do(chromedp.Click(chromedp.CSS("#op-retry")))
	b.waitFor(`document.getElementById('confirm-dialog').open`, `document.getElementById('confirm-dialog').open`, 5*time.Second, "the confirmation")
	if text := eval[string](b, `document.getElementById('confirm-dialog').innerText`); !strings.Contains(text, "Retry from 10%") || !strings.Contains(text, "v2 gets 10% of the traffic") {
		t.Errorf("the confirmation reads %q, want it to name 10%% for v2", text)
	}
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.waitFor(`!document.getElementById('confirm-dialog').open`, `document.getElementById('confirm-dialog').open`, 5*time.Second, "the confirmation to close")
	if n := f.writer.count(); n != 0 {
		t.Fatalf("Cancel wrote %d times", n)
	}
	// healthy holds the route: the API refuses, and the page says why and
	// offers Retry again.
	b.do(chromedp.Click(chromedp.CSS("#op-retry")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor(`document.getElementById('action-msg').textContent.includes('retry refused') && document.getElementById('action-msg').textContent.includes('running rollout') && !document.getElementById('op-retry').disabled`,
		`document.getElementById('action-msg').textContent`, 5*time.Second, "the refusal")
	for _, name := range []string{"checkout-v2", "healthy"} {
		if err := f.store.Delete("shop", name); err != nil {
			t.Fatal(err)
		}
	}
	b.do(chromedp.Click(chromedp.CSS("#op-retry")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor(`document.getElementById('pending').textContent === 'retrying…'`, `document.getElementById('pending').textContent`, 5*time.Second, "retrying…")
	deadline := time.Now().Add(5 * time.Second)
	for f.writer.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.writer.count(); n != 1 {
		t.Fatalf("confirming the retry wrote %d times, want once", n)
	}

	ro, _ := f.store.Get("shop", "fell")
	ro.ResourceVersion = "201"
	ro.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePending, CurrentStep: -1, Message: "retried by olga", History: append(ro.Status.History,
		v1alpha1.Transition{Time: metav1.Now(), From: "RolledBack 0 (0%)", To: "Pending", Reason: "Retried", Message: "retried by olga"})}
	if err := f.store.Upsert(ro); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`document.getElementById('phase').textContent === 'Pending' && document.getElementById('pending').hidden && !`+retryShownJS+` && `+runningControlsJS+` > 0 && document.getElementById('outcome').hidden`,
		`[document.getElementById('phase').textContent, `+runningControlsJS+`]`, 10*time.Second, "Pending with the controls of a running rollout")
	refused := func(m chromedp.ConsoleMessage) bool {
		return strings.HasSuffix(m.URL, "/api/v1/rollouts/shop/fell/retry") && strings.Contains(m.Text, "status of 409")
	}
	if errs := b.errorsBut(refused); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPauseSaysPausingUntilPaused: Pause says "pausing…" and disables the
// controls from the click until the stream shows the rollout Paused; then
// Resume is the one to offer.
func TestPauseSaysPausingUntilPaused(t *testing.T) {
	f := newFixture(t, false)
	b := newBrowser(t)
	b.login(f.srv.URL, operatorToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/checkout-v2"))
	b.waitFor(`document.getElementById('live').classList.contains('on') && document.getElementById('history').rows.length === 1`,
		`document.getElementById('live').className`, 10*time.Second, "the page to follow its stream")
	b.do(chromedp.Click(chromedp.CSS("#op-pause")))
	b.waitFor(`document.getElementById('pending').textContent === 'pausing…' && document.getElementById('op-resume').disabled && document.getElementById('op-promote').disabled`,
		`document.getElementById('pending').textContent`, 5*time.Second, "pausing…")
	ro, _ := f.store.Get("shop", "checkout-v2")
	ro.ResourceVersion, ro.Spec.Paused = "8", true
	ro.Status.Phase, ro.Status.Message = v1alpha1.PhasePaused, "paused by request; the weight is held until spec.paused is false"
	if err := f.store.Upsert(ro); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`document.getElementById('phase').textContent === 'Paused' && document.getElementById('pending').hidden && !document.getElementById('op-resume').disabled && document.getElementById('op-pause').disabled`,
		`[document.getElementById('phase').textContent, document.getElementById('pending').textContent]`, 10*time.Second, "Paused, with Resume offered")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}
