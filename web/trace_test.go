package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis/jaeger"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// slowTraceID is the example trace of the slow rollout's failing hop.
const slowTraceID = "0af7651916cd43dd8448eb211c80319c"

// seedSlow stores shop/slow, rolled back because checkout v2's calls to
// payments are slow, with the hop's example trace.
func seedSlow(t testing.TB, store *readmodel.Store) {
	t.Helper()
	tick := metav1.NewTime(time.Now().Add(-2 * time.Second))
	if err := store.Upsert(&v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "slow", ResourceVersion: "40", CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Minute))},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
		Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseRolledBack, Message: "rolled back: latency-p99 on checkout → payments from traces failed",
			Target: &v1alpha1.ResolvedTarget{Route: "primary", Host: "checkout", StableVersion: "v1", CanaryVersion: "v2"},
			Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Fail", LastTickAt: &tick, Checks: []v1alpha1.CheckStatus{
				{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Kind: "latency-p99", Verdict: "Fail",
					Canary: 412, Stable: 41.3, Limit: 123, Unit: "ms", CanaryRequests: 40, StableRequests: 300, TraceID: slowTraceID},
			}},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

// slowTrace is Jaeger v1.76's API v3 answer for slowTraceID: frontend →
// checkout v2 → payments, where checkout's call to payments takes 412 ms
// and a second, quick one fails.
func slowTrace(t testing.TB) string {
	t.Helper()
	t0 := time.Now().Add(-10 * time.Second)
	type sp struct {
		id, parent, svc, ver, name string
		kind                       int
		startMs, durMs             float64
		code                       int
	}
	spans := []sp{
		{"00000000000000f0", "", "frontend", "v1", "GET /buy", 2, 0, 430, 200},
		{"00000000000000f1", "00000000000000f0", "frontend", "v1", "POST checkout", 3, 1, 427, 200},
		{"00000000000000c0", "00000000000000f1", "checkout", "v2", "POST /checkout", 2, 2, 425, 200},
		{"00000000000000c1", "00000000000000c0", "checkout", "v2", "POST payments", 3, 4, 412, 200},
		{"00000000000000a0", "00000000000000c1", "payments", "v7", "POST /pay", 2, 5, 410, 200},
		{"00000000000000c2", "00000000000000c0", "checkout", "v2", "GET inventory-service-with-a-very-long-operation-name/items", 3, 417, 3.2, 200},
		{"00000000000000b0", "00000000000000c2", "inventory", "v3", "GET /items", 2, 417.5, 2.5, 200},
	}
	var rss []any
	for _, s := range spans {
		start := t0.Add(time.Duration(s.startMs * float64(time.Millisecond)))
		end := start.Add(time.Duration(s.durMs * float64(time.Millisecond)))
		rss = append(rss, map[string]any{
			"resource": map[string]any{"attributes": []any{
				map[string]any{"key": "service.name", "value": map[string]any{"stringValue": s.svc}},
				map[string]any{"key": "service.version", "value": map[string]any{"stringValue": s.ver}},
			}},
			"scopeSpans": []any{map[string]any{"spans": []any{map[string]any{
				"traceId": slowTraceID, "spanId": s.id, "parentSpanId": s.parent, "name": s.name, "kind": s.kind,
				"startTimeUnixNano": strconv.FormatInt(start.UnixNano(), 10), "endTimeUnixNano": strconv.FormatInt(end.UnixNano(), 10),
				"attributes": []any{map[string]any{"key": "http.status_code", "value": map[string]any{"intValue": strconv.Itoa(s.code)}}},
			}}}},
		})
	}
	b, err := json.Marshal(map[string]any{"result": map[string]any{"resourceSpans": rss}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newTraceFixture is the console and the API on one server, as the
// controller serves them, with a trace source: analysis/jaeger's Source
// on a Jaeger query API on httptest that answers slowTraceID.
func newTraceFixture(t *testing.T) *httptest.Server {
	t.Helper()
	body := slowTrace(t)
	jsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/traces/"+slowTraceID {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"httpCode":404,"message":"trace not found"}}`))
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(jsrv.Close)
	traces, err := jaeger.New(jaeger.Options{QueryURL: jsrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWrapped(t, false, seedSlow, fixtureOptions{traces: traces}).srv
}

// waterfallJS reads the drawn waterfall: each row's name, duration and
// classes, the marked row's label, and whether the bars are to scale.
const waterfallJS = `(() => {
	const rows = [...document.querySelectorAll('#trace .waterfall > li')];
	const track = rows.length ? rows[0].querySelector('.span-track').getBoundingClientRect() : {width: 0};
	const bar = (li) => li.querySelector('.span-bar').getBoundingClientRect();
	return {
		rows: rows.map((li) => li.querySelector('.span-name').textContent + ' | ' + li.querySelector('.span-dur').textContent + ' | ' + li.className),
		mark: (document.querySelector('#trace .span-marked .span-mark') || {}).textContent || '',
		markedSpan: (document.querySelector('#trace .span-marked') || {dataset: {}}).dataset.span || '',
		trackWidth: track.width,
		barWidths: rows.map((li) => bar(li).width),
		barLefts: rows.map((li) => bar(li).left - li.querySelector('.span-track').getBoundingClientRect().left),
		scrollWidth: document.documentElement.scrollWidth,
	};
})()`

type waterfall struct {
	Rows        []string  `json:"rows"`
	Mark        string    `json:"mark"`
	MarkedSpan  string    `json:"markedSpan"`
	TrackWidth  float64   `json:"trackWidth"`
	BarWidths   []float64 `json:"barWidths"`
	BarLefts    []float64 `json:"barLefts"`
	ScrollWidth float64   `json:"scrollWidth"`
}

// TestTraceWaterfall opens a rolled-back rollout in Chromium, clicks its
// failing hop's example trace and reads the waterfall the page draws from
// the API (from a Jaeger query API on httptest): a row per span in tree
// order, with service · operation and the duration in three significant
// figures; the canary's rows highlighted, and checkout v2's slow call to
// payments marked with a label that says so; bars to scale. At 390×844
// the page does not scroll sideways, and the browser console stays free
// of errors.
func TestTraceWaterfall(t *testing.T) {
	srv := newTraceFixture(t)
	b := newBrowser(t)
	b.login(srv.URL, viewerToken)
	b.do(chromedp.EmulateViewport(390, 844))
	b.do(chromedp.Navigate(srv.URL + "/rollouts/shop/slow"))
	b.waitFor(`document.querySelector('#hops button.trace-open')`, `document.getElementById('hops').innerText`, 10*time.Second, "the hop's example trace")
	if n := eval[int](b, `document.querySelectorAll('#hops a').length`); n != 0 {
		t.Errorf("the per-hop table has %d links, want none (no Jaeger UI)", n)
	}
	b.do(chromedp.Click(chromedp.CSS("#hops button.trace-open")))
	b.waitFor(`document.querySelectorAll('#trace .waterfall > li').length === 7`, `document.getElementById('trace').innerText`, 10*time.Second, "the waterfall")

	var w waterfall
	if err := json.Unmarshal([]byte(eval[string](b, "JSON.stringify("+waterfallJS+")")), &w); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"frontend · GET /buy | 430 ms | span",
		"frontend · POST checkout | 427 ms | span",
		"checkout · POST /checkout | 425 ms | span span-canary",
		"checkout · POST payments | 412 ms | span span-canary span-marked",
		"payments · POST /pay | 410 ms | span",
		"checkout · GET inventory-service-with-a-very-long-operation-name/items | 3.2 ms | span span-canary",
		"inventory · GET /items | 2.5 ms | span",
	}
	if strings.Join(w.Rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("the waterfall reads:\n%s\nwant:\n%s", strings.Join(w.Rows, "\n"), strings.Join(want, "\n"))
	}
	if w.MarkedSpan != "00000000000000c1" || w.Mark != "slowest canary call on checkout → payments" {
		t.Errorf("marked span %q labelled %q, want checkout's call to payments, \"slowest canary call on checkout → payments\"", w.MarkedSpan, w.Mark)
	}
	// Bars to scale: the trace is 430 ms; payments' server span 410 ms
	// starts 5 ms in.
	if len(w.BarWidths) == 7 && w.TrackWidth > 0 {
		if got := w.BarWidths[0] / w.TrackWidth; got < 0.99 {
			t.Errorf("the root's bar is %.2f of the track, want all of it", got)
		}
		if got := w.BarWidths[4] / w.TrackWidth; got < 0.94 || got > 0.96 {
			t.Errorf("payments' bar is %.3f of the track, want 410/430", got)
		}
		if got := w.BarLefts[6] / w.TrackWidth; got < 0.96 || got > 0.975 {
			t.Errorf("inventory's bar starts at %.3f of the track, want 417.5/430", got)
		}
	}
	if w.ScrollWidth > 390 {
		t.Errorf("the page is %vpx wide at 390px with the waterfall open", w.ScrollWidth)
	}
	b.screenshot("trace-waterfall-phone")
	b.do(chromedp.EmulateViewport(1280, 800))
	b.screenshot("trace-waterfall")

	// Close hides it.
	b.do(chromedp.Click(chromedp.CSS("#trace .trace-close")))
	b.waitFor(`document.getElementById('trace').hidden`, `document.getElementById('trace').innerText`, 5*time.Second, "the waterfall to close")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}
