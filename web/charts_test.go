package web_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// paymentsErrors is the key of the failing hop's chart (readmodel.CheckKey).
const paymentsErrors = "error-rate|checkout → payments|prometheus"

// seedHopRollback stores shop/hop-fell as the read model saw it tick by
// tick: 10%, then 25%, then its payments hop failing at 15.6% (more than
// 10× its first values) and the rollback; and shop/counting, progressing
// at 25% with no data for 10 s.
func seedHopRollback(t testing.TB, store *readmodel.Store) {
	t.Helper()
	t0 := time.Now().Add(-20 * time.Second).Truncate(time.Second)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }
	hop := func(verdict string, canary float64) v1alpha1.CheckStatus {
		return v1alpha1.CheckStatus{Check: "error-rate", Kind: "error-rate", Hop: "checkout → payments", Source: "prometheus", Verdict: verdict,
			Canary: canary, Stable: 0.1, Limit: 1, Unit: "%", CanaryRequests: 300, StableRequests: 2700}
	}
	passing := v1alpha1.CheckStatus{Check: "latency-p99", Kind: "latency-p99", Hop: "checkout → inventory", Source: "jaeger", Verdict: "Pass",
		Canary: 80, Stable: 78, Limit: 400, Unit: "ms", CanaryRequests: 50, StableRequests: 150}
	inbound := v1alpha1.CheckStatus{Check: "error-rate", Kind: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.2, Stable: 0.2, Limit: 1, Unit: "%",
		CanaryRequests: 300, StableRequests: 2700}
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "hop-fell", CreationTimestamp: metav1.Time{Time: t0.Add(-time.Second)}},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
	}
	r.Status.Analysis.Since = at(0)
	history := []v1alpha1.Transition{{Time: *at(0), From: "Pending", To: "Progressing 1/4 (10%)", Reason: "Started"}}
	for i, tick := range []struct {
		after   time.Duration
		weight  int32
		verdict string
		canary  float64
	}{{2 * time.Second, 10, "Pass", 0.5}, {4 * time.Second, 10, "Pass", 0.4}, {6 * time.Second, 25, "Pass", 0.6}, {8 * time.Second, 25, "Fail", 15.6}} {
		r.ResourceVersion = string(rune('1' + i))
		r.Status.Phase, r.Status.CanaryWeight, r.Status.CurrentStep = v1alpha1.PhaseProgressing, tick.weight, 0
		if tick.weight == 25 {
			r.Status.CurrentStep = 1
			if len(history) == 1 {
				history = append(history, v1alpha1.Transition{Time: *at(tick.after), From: "Progressing 1/4 (10%)", To: "Progressing 2/4 (25%)", Reason: "StepAdvanced"})
			}
		}
		r.Status.Analysis.LastTickAt, r.Status.Analysis.LastVerdict = at(tick.after), tick.verdict
		r.Status.Analysis.Checks = []v1alpha1.CheckStatus{inbound, hop(tick.verdict, tick.canary), passing}
		if tick.verdict == "Fail" {
			r.Status.Phase, r.Status.CanaryWeight = v1alpha1.PhaseRolledBack, 0
			r.Status.Message = "rolled back: error-rate on checkout → payments failed; traffic returned to stable (100/0)"
			history = append(history, v1alpha1.Transition{Time: *at(tick.after), From: "Progressing 2/4 (25%)", To: "RolledBack 2/4 (0%)", Reason: "RolledBack", Message: r.Status.Message})
		}
		r.Status.History = append([]v1alpha1.Transition(nil), history...)
		if err := store.Upsert(r); err != nil {
			t.Fatal(err)
		}
	}

	now := time.Now()
	counting := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "counting", ResourceVersion: "50", CreationTimestamp: metav1.Time{Time: now.Add(-time.Minute)}},
		Spec: v1alpha1.RolloutSpec{VirtualService: "cart", StableSubset: "v1", CanarySubset: "v2",
			StepInterval: &metav1.Duration{Duration: 90 * time.Second}},
		Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, CanaryWeight: 25,
			StepStartedAt: &metav1.Time{Time: now.Add(-5 * time.Second)}},
	}
	counting.Status.Analysis.LastTickAt = &metav1.Time{Time: now.Add(-time.Second)}
	counting.Status.Analysis.LastVerdict = "Inconclusive"
	counting.Status.Analysis.InconclusiveSince = &metav1.Time{Time: now.Add(-10 * time.Second)}
	if err := store.Upsert(counting); err != nil {
		t.Fatal(err)
	}
}

// TestFailingHopHasItsChart: a rollback by a downstream hop draws that
// hop's chart (a passing hop has none), marked as failing, with the step
// change and the rollback drawn across it and a log scale for values
// that span more than 10×; the controls are those the API's view opens
// (Retry alone).
func TestFailingHopHasItsChart(t *testing.T) {
	f := newFixtureWith(t, false, seedHopRollback)
	b := newBrowser(t)
	b.login(f.srv.URL, operatorToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/hop-fell"))
	fig := `document.querySelector('#charts figure[data-check="` + paymentsErrors + `"]')`
	b.waitFor(fig+` !== null && `+fig+`.querySelector('.mark-end') !== null`,
		`[...document.querySelectorAll('#charts figure')].map((f) => f.dataset.check).join(', ')`, 10*time.Second, "the payments hop's chart")
	b.screenshot("rollout-hop-chart")

	if !eval[bool](b, fig+`.classList.contains('failing-hop')`) {
		t.Error("the failing hop's chart is not marked as failing")
	}
	if got := eval[string](b, fig+`.dataset.scale`); got != "log" {
		t.Errorf("the hop's values span 0.1%%–15.6%%, drawn on a %s scale, want log", got)
	}
	if got := eval[string](b, `[...`+fig+`.querySelectorAll('.mark-label')].map((n) => n.textContent).join(',')`); got != "25%,rollback" {
		t.Errorf("marks on the hop's chart: %q, want the step to 25%% and the rollback", got)
	}
	if n := eval[int](b, fig+`.querySelectorAll('path.line.limit').length`); n != 1 {
		t.Errorf("%d limit lines on the hop's chart, want 1", n)
	}
	caption := eval[string](b, fig+`.querySelector('figcaption').innerText`)
	for _, want := range []string{"error-rate · checkout → payments", "canary 15.6%", "limit 1%", "since the analysis began"} {
		if !strings.Contains(caption, want) {
			t.Errorf("the hop chart's caption lacks %q: %q", want, caption)
		}
	}
	if eval[bool](b, `document.querySelector('#charts figure[data-check^="latency-p99|checkout → inventory"]') !== null`) {
		t.Error("a passing hop has a chart; it belongs in the per-hop table only")
	}
	if got := eval[string](b, `document.querySelector('#charts figure[data-check="canary weight"]').dataset.scale`); got != "linear" {
		t.Errorf("the weight is drawn on a %s scale", got)
	}
	if n := eval[int](b, runningControlsJS); n != 0 || !eval[bool](b, retryShownJS) {
		t.Errorf("a rolled-back rollout shows %d running controls, Retry %v; want Retry alone", n, eval[bool](b, retryShownJS))
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestCountdownsCount: a progressing rollout says when its next step
// comes and, without data, when the inconclusive limit rolls it back, and
// the seconds go down.
func TestCountdownsCount(t *testing.T) {
	f := newFixtureWith(t, false, seedHopRollback)
	b := newBrowser(t)
	b.login(f.srv.URL, viewerToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/counting"))
	b.waitFor(`document.querySelector('#due .due-nodata') !== null && document.querySelector('#due .due-nodata').textContent !== ''`,
		`document.getElementById('due').outerHTML`, 10*time.Second, "the countdowns")
	step := eval[string](b, `document.querySelector('#due .due-step').textContent`)
	if !strings.HasPrefix(step, "Next: step 3/4 (50%) in ") || !strings.HasSuffix(step, " s, if the analysis passes.") {
		t.Errorf("next-step countdown reads %q", step)
	}
	first := eval[string](b, `document.querySelector('#due .due-nodata').textContent`)
	if !strings.HasPrefix(first, "No data: rolls back in ") {
		t.Errorf("no-data countdown reads %q", first)
	}
	b.waitFor(`document.querySelector('#due .due-nodata').textContent !== `+jsString(first),
		`document.querySelector('#due .due-nodata').textContent`, 5*time.Second, "the no-data countdown to count down")
	if n := eval[int](b, visibleControlsJS); n != 0 {
		t.Errorf("a viewer sees %d controls", n)
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
