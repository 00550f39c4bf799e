package web_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// longName is a rollout name as long as a phone's width, with no place to
// break it.
const longName = "payments-api-canary-with-a-name-longer-than-a-phone-screen"

// seedPhone stores seedPages' rollouts and one with a long name, ten
// steps and long hop names, the widest things a rollout page shows.
func seedPhone(t testing.TB, store *readmodel.Store) {
	t.Helper()
	seedPages(t, store)
	ro, _ := store.Get("shop", "healthy")
	ro.Name, ro.ResourceVersion = longName, "300"
	ro.Spec.Steps = []int32{1, 2, 5, 10, 20, 30, 40, 50, 75, 100}
	tick := metav1.NewTime(time.Now())
	ro.Status.Analysis.LastTickAt = &tick
	ro.Status.Analysis.Checks = append(ro.Status.Analysis.Checks, v1alpha1.CheckStatus{
		Check: "error-rate", Hop: "checkout-frontend-gateway → payments-authorisation-service", Source: "jaeger", Kind: "error-rate",
		Verdict: "Pass", Canary: 0.12, Stable: 0.1, Limit: 1, Unit: "%", CanaryRequests: 900, StableRequests: 900,
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"})
	if err := store.Upsert(ro); err != nil {
		t.Fatal(err)
	}
}

// phoneJS measures a page at phone width: how wide the document is, the
// smallest chart text as drawn on the screen (font size times the SVG's
// scale), and how many table rows are not stacked as cards.
const phoneJS = `(() => {
	const texts = [...document.querySelectorAll('svg.plot text')];
	const px = texts.map((t) => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getScreenCTM().a);
	const rows = [...document.querySelectorAll('table tbody tr')].filter((tr) => tr.checkVisibility() && getComputedStyle(tr).display === 'table-row');
	return {scrollWidth: document.documentElement.scrollWidth, texts: texts.length, smallest: px.length ? Math.min(...px) : 0, tableRows: rows.length};
})()`

type phoneMeasure struct {
	ScrollWidth float64 `json:"scrollWidth"`
	Texts       int     `json:"texts"`
	Smallest    float64 `json:"smallest"`
	TableRows   int     `json:"tableRows"`
}

// TestPhoneWidthHasNoSidewaysScroll opens the list and every rollout page
// at 390×844: nothing is wider than the screen, the tables are stacked
// cards (the list's rows keep the fixed height its drawing relies on),
// and the charts' text is at least 10 px on the screen.
func TestPhoneWidthHasNoSidewaysScroll(t *testing.T) {
	f := newFixtureWith(t, false, seedPhone)
	b := newBrowser(t)
	b.do(chromedp.EmulateViewport(390, 844))
	b.login(f.srv.URL, operatorToken)
	b.waitFor(`document.getElementById('list').dataset.loaded === 'true' && document.querySelectorAll('#rows tr.row').length === 4`,
		`document.getElementById('list').dataset`, 10*time.Second, "the list")
	m := eval[phoneMeasure](b, phoneJS)
	if m.ScrollWidth > 390 {
		t.Errorf("the list is %vpx wide at 390px", m.ScrollWidth)
	}
	if h := eval[[]float64](b, `[document.querySelector('#rows tr.row').getBoundingClientRect().height,
		parseFloat(getComputedStyle(document.getElementById('table')).getPropertyValue('--row-h'))]`); h[0] != h[1] || h[0] < 50 {
		t.Errorf("a list card is %vpx high, --row-h %vpx; want the two-line card at --row-h", h[0], h[1])
	}
	b.screenshot("phone-list")

	for _, name := range []string{"checkout-v2", "healthy", "fell", longName} {
		b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/" + name))
		b.waitFor(`document.getElementById('live').classList.contains('on') && document.getElementById('hops').rows.length > 0 && document.getElementById('history').rows.length > 0`,
			`document.getElementById('live').className`, 10*time.Second, name+" drawn")
		if name != "checkout-v2" { // it has no analysis tick, so no chart
			b.waitFor(`document.querySelectorAll('svg.plot text').length > 0`, `document.getElementById('charts').innerText`, 10*time.Second, name+"'s charts")
		}
		m := eval[phoneMeasure](b, phoneJS)
		if m.ScrollWidth > 390 {
			t.Errorf("%s is %vpx wide at 390px", name, m.ScrollWidth)
		}
		if m.TableRows != 0 {
			t.Errorf("%s has %d table rows not stacked as cards", name, m.TableRows)
		}
		if m.Texts > 0 && m.Smallest < 10 {
			t.Errorf("%s's chart text is %.1fpx on the screen, want at least 10px", name, m.Smallest)
		}
		b.screenshot("phone-" + strings.SplitN(name, "-", 2)[0])
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// countStreams counts the event streams the server is serving now.
func countStreams(open *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/events") {
				open.Add(1)
				defer open.Add(-1)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestNoPageLogsAnError visits every kind of page, signed out and in, as
// operator and viewer: the sign-in form, the list, each rollout, a
// missing rollout and a missing page. The browser console stays free of
// errors and exceptions, and a page left behind leaves no stream open
// (over HTTP/1.1 six of them would stall the next page).
func TestNoPageLogsAnError(t *testing.T) {
	var open atomic.Int64
	f := newFixtureWrapped(t, false, seedPhone, fixtureOptions{wrap: countStreams(&open)})
	b := newBrowser(t)
	// The browser logs the 404 status of a missing page as an error of
	// that page; it is the answer asked for, and no script's error.
	notFound := map[string]bool{}
	for _, token := range []string{operatorToken, viewerToken} {
		b.login(f.srv.URL, token)
		b.waitFor(`document.getElementById('list').dataset.loaded === 'true'`, `document.getElementById('list').dataset`, 10*time.Second, "the list")
		for _, name := range []string{"checkout-v2", "healthy", "fell", longName} {
			b.do(chromedp.Navigate(f.srv.URL + "/rollouts/shop/" + name))
			b.waitFor(`document.getElementById('live').classList.contains('on') && document.getElementById('history').rows.length > 0`,
				`document.getElementById('live').className`, 10*time.Second, name+" drawn")
			if token == viewerToken {
				if n := eval[int](b, visibleControlsJS); n != 0 {
					t.Errorf("the viewer sees %d controls on %s", n, name)
				}
			}
		}
		for _, path := range []string{"/rollouts/shop/nope", "/no/such/page"} {
			b.do(chromedp.Navigate(f.srv.URL+path), chromedp.WaitVisible(chromedp.CSS("#error-message")))
			notFound[f.srv.URL+path] = true
		}
		deadline := time.Now().Add(10 * time.Second) // the server's heartbeat, which would end them anyway, is 60 s
		for open.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := open.Load(); n > 0 {
			t.Errorf("%d event streams of pages left behind are still open", n)
		}
		b.do(chromedp.Navigate(f.srv.URL+"/"), chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	}
	missing := func(m chromedp.ConsoleMessage) bool {
		return notFound[m.URL] && strings.Contains(m.Text, "status of 404")
	}
	if errs := b.errorsBut(missing); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}
