package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// hopFailKey is the check that rolled shop/hop-failed back, keyed as the
// series and the charts key it.
var hopFailKey = readmodel.CheckKey("error-rate", "checkout → payments", "prometheus")

// seedGraph stores seedPages' rollouts and shop/hop-failed, rolled back
// a minute into its analysis by its calls to payments (20% errors in
// metrics) while its inbound traffic and its calls to inventory passed.
func seedGraph(t testing.TB, store *readmodel.Store) {
	t.Helper()
	seedPages(t, store)
	since := metav1.NewTime(time.Now().Add(-62 * time.Second))
	tick := metav1.NewTime(since.Add(time.Minute))
	const payments, inventory = "checkout → payments", "checkout → inventory"
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "hop-failed", ResourceVersion: "400", CreationTimestamp: since},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
		Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseRolledBack, Message: "rolled back: error-rate on checkout → payments failed",
			Target: &v1alpha1.ResolvedTarget{Host: "checkout.shop.svc.cluster.local", StableVersion: "v1", CanaryVersion: "v2"},
			Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Fail", Since: &since, LastTickAt: &tick, Checks: []v1alpha1.CheckStatus{
				{Check: "error-rate", Kind: "error-rate", Hop: payments, Source: "prometheus", Verdict: "Fail", Canary: 20.04, CanaryLow: 15, CanaryHigh: 26,
					Stable: 0.1, StableHigh: 0.4, Limit: 1, Unit: "%", CanaryRequests: 300, StableRequests: 900},
				{Check: "error-rate", Kind: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.5, Stable: 0.25, Limit: 1, Unit: "%", CanaryRequests: 600, StableRequests: 1800},
				{Check: "latency-p99", Kind: "latency-p99", Source: "prometheus", Verdict: "Pass", Canary: 98.76, Stable: 91.2, Limit: 150, Unit: "ms", CanaryRequests: 600, StableRequests: 1800},
				{Check: "latency-p99", Kind: "latency-p99", Hop: payments, Source: "prometheus", Verdict: "Pass", Canary: 120, Stable: 110, Limit: 200, Unit: "ms", CanaryRequests: 300, StableRequests: 900},
				{Check: "error-rate", Kind: "error-rate", Hop: inventory, Source: "prometheus", Verdict: "Pass", Canary: 0, Stable: 0.2, Limit: 1, Unit: "%", CanaryRequests: 120, StableRequests: 360},
				{Check: "latency-p99", Kind: "latency-p99", Hop: inventory, Source: "jaeger", Verdict: "Pass", Canary: 45, Stable: 40, Limit: 100, Unit: "ms", CanaryRequests: 12, StableRequests: 36},
			}},
			History: []v1alpha1.Transition{{Time: tick, From: "Progressing 1/4 (10%)", To: "RolledBack 1/4 (0%)", Reason: "RolledBack",
				Message: "rolled back: error-rate on checkout → payments failed"}},
		},
	}
	if err := store.Upsert(r); err != nil {
		t.Fatal(err)
	}
}

// graphJS reads the graph as drawn: its layout, its nodes' labels, and
// each edge's classes, accessible label and text, by hop.
const graphJS = `(() => {
	const s = document.querySelector('#graph svg');
	const edges = {};
	for (const e of s.querySelectorAll('.edge')) edges[e.dataset.hop] = {tag: e.tagName, cls: e.getAttribute('class'), label: e.getAttribute('aria-label') || '', text: e.textContent};
	const nodes = [...s.querySelectorAll('.node')].map((n) => n.dataset.node + '=' + n.querySelector('text').textContent);
	return {mode: s.classList.contains('wide') ? 'wide' : 'narrow', width: s.getBoundingClientRect().width, nodes, edges};
})()`

type drawnGraph struct {
	Mode  string   `json:"mode"`
	Width float64  `json:"width"`
	Nodes []string `json:"nodes"`
	Edges map[string]struct {
		Tag   string `json:"tag"`
		Cls   string `json:"cls"`
		Label string `json:"label"`
		Text  string `json:"text"`
	} `json:"edges"`
}

// TestServiceGraph draws shop/hop-failed's graph in Chromium, wide on a
// desktop and stacked at 390×844: the stable and canary nodes and every
// edge with both versions' values; the failing hop marked (class and
// label) and a link that brings its chart, or its row, into view; no
// sideways scroll on the phone, text of at least 10 px, and no console
// errors.
func TestServiceGraph(t *testing.T) {
	f := newFixtureWith(t, false, seedGraph)
	b := newBrowser(t)
	b.do(chromedp.EmulateViewport(1280, 900))
	b.login(f.srv.URL, operatorToken)
	b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/hop-failed"))
	b.waitFor(`document.querySelectorAll('#graph svg .edge').length === 3 && document.getElementById('hops').rows.length > 0`,
		`document.getElementById('graph').innerHTML`, 10*time.Second, "the graph of hop-failed")

	g := eval[drawnGraph](b, graphJS)
	if g.Mode != "wide" {
		t.Errorf("at 1280 px the graph is drawn %s, want wide", g.Mode)
	}
	for _, want := range []string{"stable=stable v1", "canary=canary v2", "callers=callers", "svc:payments=payments", "svc:inventory=inventory"} {
		if !strings.Contains(strings.Join(g.Nodes, "\n"), want) {
			t.Errorf("the graph's nodes %q lack %q", g.Nodes, want)
		}
	}
	for hop, want := range map[string][]string{
		"inbound":              {"inbound · metrics", "pass", "30 req/s", "10 req/s", "0.25%", "0.5%", "91.2 ms", "98.8 ms"},
		"checkout → payments":  {"checkout → payments · metrics", "fail", "15 req/s", "5 req/s", "0.1%", "20%", "110 ms", "120 ms"},
		"checkout → inventory": {"checkout → inventory · metrics", "pass", "6 req/s", "2 req/s", "0.2%", "0%", "no data"},
	} {
		e, ok := g.Edges[hop]
		if !ok {
			t.Errorf("the graph has no edge %s: %+v", hop, g.Edges)
			continue
		}
		for _, w := range want {
			if !strings.Contains(e.Text, w) {
				t.Errorf("edge %s reads %q, want %q in it", hop, e.Text, w)
			}
		}
		failing := hop == "checkout → payments"
		if strings.Contains(e.Cls, "failing") != failing || (e.Tag == "a") != failing || strings.HasPrefix(e.Label, "Failing edge") != failing {
			t.Errorf("edge %s is a %s of class %q labelled %q; failing %v", hop, e.Tag, e.Cls, e.Label, failing)
		}
		if want := "state-" + map[bool]string{true: "fail", false: "pass"}[failing]; !strings.Contains(e.Cls, want) {
			t.Errorf("edge %s has class %q, want %s", hop, e.Cls, want)
		}
	}
	if l := g.Edges["checkout → payments"].Label; !strings.Contains(l, "Canary 5 req/s, errors 20%, p99 120 ms") {
		t.Errorf("the failing edge's label %q does not give the canary's values", l)
	}
	b.screenshot("graph")

	// The failing edge leads to its chart, or to its row while it has no
	// chart: the target is focused and in view.
	b.do(chromedp.Click(chromedp.CSS(`#graph a.failing`)))
	b.waitFor(`(() => {
		const a = document.activeElement;
		const chart = a.matches('figure[data-check]') && a.dataset.check === `+jsString(hopFailKey)+`;
		const row = a.matches('#hops tr') && a.cells[0].textContent === 'checkout → payments' && a.cells[1].textContent === 'metrics';
		const r = a.getBoundingClientRect();
		return (chart || row) && r.top < innerHeight && r.bottom > 0;
	})()`, `document.activeElement.outerHTML.slice(0, 200)`, 5*time.Second, "the failing hop's chart or row focused and in view")
	b.screenshot("graph-followed")

	// Without its chart, it leads to its row in the per-hop table.
	eval[bool](b, `(document.querySelectorAll("#charts figure").forEach((f) => f.remove()), window.scrollTo(0, 0), true)`)
	b.do(chromedp.Click(chromedp.CSS(`#graph a.failing`)))
	b.waitFor(`(() => {
		const a = document.activeElement, r = a.getBoundingClientRect();
		return a.matches('#hops tr') && a.cells[0].textContent === 'checkout → payments' && a.cells[1].textContent === 'metrics' && r.top < innerHeight && r.bottom > 0;
	})()`, `document.activeElement.outerHTML.slice(0, 200)`, 5*time.Second, "the failing hop's row focused and in view")

	b.do(chromedp.Navigate(f.srv.URL+"/rollouts/shop/hop-failed"), chromedp.EmulateViewport(390, 844))
	b.waitFor(`document.documentElement.clientWidth === 390 && document.querySelector('#graph svg.narrow') !== null`,
		`document.querySelector('#graph svg').getAttribute('class')`, 10*time.Second, "the graph stacked at phone width")
	g = eval[drawnGraph](b, graphJS)
	if len(g.Edges) != 3 || len(g.Nodes) != 5 {
		t.Errorf("at phone width the graph has %d edges and %d nodes, want 3 and 5", len(g.Edges), len(g.Nodes))
	}
	if w := eval[float64](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the rollout page with its graph is %vpx wide at 390px", w)
	}
	if g.Width > 390 {
		t.Errorf("the graph is %vpx wide at 390px", g.Width)
	}
	if px := eval[float64](b, `Math.min(...[...document.querySelectorAll('#graph svg text')].map((t) => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getScreenCTM().a))`); px < 10 {
		t.Errorf("the graph's smallest text is %.1fpx on the screen, want at least 10px", px)
	}
	if clipped := eval[int](b, `(() => {
		const box = document.querySelector('#graph svg').getBoundingClientRect();
		return [...document.querySelectorAll('#graph svg text')].filter((t) => { const r = t.getBoundingClientRect(); return r.left < box.left - 1 || r.right > box.right + 1; }).length;
	})()`); clipped != 0 {
		t.Errorf("%d texts of the graph stick out of it at phone width", clipped)
	}
	b.screenshot("phone-graph")

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}
