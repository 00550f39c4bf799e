package web_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// seedList stores n rollouts, app-0000 to app-<n-1>, in three
// namespaces. One in every 80 is active (Progressing, Paused or Pending in
// turn), spread over the names so that the name order alone would not
// put them first; the others have finished. Resource versions count up
// from 1000.
func seedList(n int) func(testing.TB, *readmodel.Store) {
	active := []v1alpha1.Phase{v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhasePending}
	done := []v1alpha1.Phase{v1alpha1.PhaseSucceeded, v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed}
	width := len(strconv.Itoa(n - 1))
	return func(t testing.TB, store *readmodel.Store) {
		t.Helper()
		created := time.Now().Add(-time.Hour)
		for i := range n {
			phase := done[i%len(done)]
			if i%80 == 17 {
				phase = active[(i/80)%len(active)]
			}
			ro := listRollout(fmt.Sprintf("team-%d", i%3), fmt.Sprintf("app-%0*d", width, i), phase, 1000+i)
			ro.CreationTimestamp = metav1.NewTime(created.Add(time.Duration(i) * time.Second))
			if err := store.Upsert(ro); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func listRollout(ns, name string, phase v1alpha1.Phase, rv int) *v1alpha1.Rollout {
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: strconv.Itoa(rv), CreationTimestamp: metav1.Now()},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
		Status:     v1alpha1.RolloutStatus{Phase: phase},
	}
	if phase == v1alpha1.PhaseProgressing || phase == v1alpha1.PhasePaused {
		ro.Status.CanaryWeight = 10
	}
	return ro
}

// drawnRow is a row of the list as the browser shows it.
type drawnRow struct {
	Key    string `json:"key"`
	Phase  string `json:"phase"`
	Step   string `json:"step"`
	Weight string `json:"weight"`
}

// drawnJS returns the list's drawn rows and the position in the list of
// the first (aria-rowindex counts the header as row 1).
const drawnJS = `(() => {
  const rows = [...document.querySelectorAll('#rows tr.row')];
  return {first: rows.length ? Number(rows[0].getAttribute('aria-rowindex')) - 2 : 0,
    rows: rows.map((tr) => ({key: tr.dataset.key, phase: tr.querySelector('.badge').textContent,
      step: tr.cells[2].textContent, weight: tr.querySelector('.weight').textContent}))};
})()`

type drawn struct {
	First int        `json:"first"`
	Rows  []drawnRow `json:"rows"`
}

func (b *browser) drawn() drawn { return eval[drawn](b, drawnJS) }

// expected is the API's list, in its order, that pass keep.
func expected(t testing.TB, store *readmodel.Store, keep func(readmodel.Summary) bool) []readmodel.Summary {
	t.Helper()
	rows, err := store.Summaries(readmodel.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []readmodel.Summary
	for _, r := range rows {
		if keep == nil || keep(r.Summary) {
			out = append(out, r.Summary)
		}
	}
	return out
}

// matches reports whether the drawn rows are the rows of want at their
// positions, showing what the API shows.
func (d drawn) matches(want []readmodel.Summary) bool {
	if len(d.Rows) == 0 || d.First+len(d.Rows) > len(want) {
		return len(d.Rows) == 0 && len(want) == 0
	}
	for i, r := range d.Rows {
		s := want[d.First+i]
		if r.Key != s.Namespace+"/"+s.Name || r.Phase != string(s.Phase) || r.Step != s.Step || r.Weight != fmt.Sprintf("%d%%", s.Weight) {
			return false
		}
	}
	return true
}

// waitList waits until the list shows want, filtered, at the position it
// is scrolled to: the count, and the drawn rows, in the API's order.
func (b *browser) waitList(t *testing.T, want []readmodel.Summary, total int, what string) drawn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var d drawn
	for time.Now().Before(deadline) {
		d = b.drawn()
		counts := eval[[]string](b, `[document.getElementById('list').dataset.shown, document.getElementById('list').dataset.total]`)
		if d.matches(want) && counts[0] == strconv.Itoa(len(want)) && counts[1] == strconv.Itoa(total) {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.screenshot("failure")
	t.Fatalf("timed out waiting for %s: %d of %d rows shown, drawn from %d: %v", what, len(want), total, d.First, d.Rows)
	return d
}

// rowJS is the expression of the drawn row of a rollout.
func rowJS(key string) string {
	return fmt.Sprintf(`document.querySelector('#rows tr.row[data-key=%q]')`, key)
}

// TestListInBrowser drives the list page in headless Chromium with 1,000
// rollouts in the read model, served by the real API: the page draws only
// the rows in view, active rollouts first in the API's order; scrolling to
// the bottom shows the last rollout; a change from the list stream
// rewrites its one row, in place, and moves it when it finishes; the
// filters narrow the list and stay in the URL through a reload.
func TestListInBrowser(t *testing.T) {
	const n = 1000
	f := newFixtureWith(t, false, seedList(n))
	b := newBrowser(t)
	b.login(f.srv.URL, viewerToken)
	all := expected(t, f.store, nil)
	b.waitFor(`document.getElementById('list').dataset.loaded === 'true'`, `document.getElementById('list').dataset`, 20*time.Second, "the list to load")
	d := b.waitList(t, all, n, "the first rows")

	// Far fewer rows than rollouts, each of the stylesheet's height, in a
	// table as tall as the whole list.
	if len(d.Rows) < 10 || len(d.Rows) > 60 || d.First != 0 {
		t.Fatalf("the page drew %d rows from %d for %d rollouts, want a window of 10 to 60 from the top", len(d.Rows), d.First, n)
	}
	if h := eval[[]float64](b, `[document.querySelector('#rows tr.row').getBoundingClientRect().height,
		parseFloat(getComputedStyle(document.getElementById('table')).getPropertyValue('--row-h')),
		document.getElementById('scroller').scrollHeight]`); h[0] != h[1] || h[2] < float64(n)*h[1] {
		t.Errorf("row height %vpx, --row-h %vpx, list height %vpx; want the rows at --row-h and the list %d rows tall", h[0], h[1], h[2], n)
	}
	active := 0
	for _, s := range all {
		if s.Active {
			active++
		}
	}
	for i, r := range d.Rows[:active+1] {
		isActive := r.Phase == "Progressing" || r.Phase == "Paused" || r.Phase == "Pending"
		if isActive != (i < active) {
			t.Errorf("row %d is %s %s; want the %d active rollouts first", i, r.Key, r.Phase, active)
		}
	}
	b.screenshot("list-top")

	// Scrolling to the bottom shows the last rollout, in view.
	last := all[n-1].Namespace + "/" + all[n-1].Name
	eval[bool](b, `(s => { s.scrollTop = s.scrollHeight; return true })(document.getElementById('scroller'))`)
	b.waitFor(fmt.Sprintf(`(() => {
		const s = document.getElementById('scroller').getBoundingClientRect();
		const rows = document.querySelectorAll('#rows tr.row');
		const tr = rows[rows.length - 1], r = tr && tr.getBoundingClientRect();
		return tr && tr.dataset.key === %q && r.top >= s.top && r.bottom <= s.bottom + 1;
	})()`, last), `[...document.querySelectorAll('#rows tr.row')].slice(-1).map((tr) => tr.dataset.key)`, 10*time.Second, "the last rollout at the bottom")
	if d := b.waitList(t, all, n, "the last rows"); len(d.Rows) > 60 || d.First+len(d.Rows) != n {
		t.Errorf("at the bottom the page drew %d rows from %d, want a window ending at %d", len(d.Rows), d.First, n)
	}
	b.screenshot("list-bottom")
	eval[bool](b, `(s => { s.scrollTop = 0; return true })(document.getElementById('scroller'))`)
	b.waitFor(`document.querySelector('#rows tr.row').getAttribute('aria-rowindex') === '2'`,
		`document.querySelector('#rows tr.row').getAttribute('aria-rowindex')`, 10*time.Second, "the first rows again")
	b.waitList(t, all, n, "the first rows again")

	listDeltas(t, f, b)
	listFilters(t, f, b)

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// listDeltas changes the read model under the open list: each change
// comes through the list stream and touches only its own row.
func listDeltas(t *testing.T, f *fixture, b *browser) {
	b.waitFor(`document.getElementById('live').classList.contains('on')`, `document.getElementById('live').textContent`, 10*time.Second, "the list stream")
	all := expected(t, f.store, nil)
	// target is the first Progressing rollout, other the first row besides.
	i := slices.IndexFunc(all, func(s readmodel.Summary) bool { return s.Phase == v1alpha1.PhaseProgressing })
	if i < 0 || i > 10 {
		t.Fatalf("the first Progressing rollout is row %d, want one in the first rows", i)
	}
	target, other := all[i], all[0]
	if i == 0 {
		other = all[1]
	}
	tk, ok := target.Namespace+"/"+target.Name, other.Namespace+"/"+other.Name
	// Mark both rows' elements, and record which rows the DOM changes in,
	// leaving out the relative times that console.js refreshes every 5 s.
	eval[bool](b, fmt.Sprintf(`(() => {
		%s.mark = 'target'; %s.mark = 'other';
		window.touched = new Set();
		window.record = (ms) => { for (const m of ms) {
			const n = m.target.nodeType === 1 ? m.target : m.target.parentElement;
			if (n.closest('time')) continue;
			const tr = n.closest('tr.row');
			window.touched.add(tr ? tr.dataset.key : n.id || n.tagName);
		} };
		window.observer = new MutationObserver(window.record);
		window.observer.observe(document.getElementById('rows'), {subtree: true, childList: true, attributes: true, characterData: true});
		return true;
	})()`, rowJS(tk), rowJS(ok)))

	ro, found := f.store.Get(target.Namespace, target.Name)
	if !found {
		t.Fatalf("%s is not in the read model", tk)
	}
	ro.Status.CurrentStep, ro.Status.CanaryWeight, ro.ResourceVersion = 2, 50, "9001"
	if err := f.store.Upsert(ro); err != nil {
		t.Fatal(err)
	}
	b.waitFor(fmt.Sprintf(`%[1]s && %[1]s.querySelector('.weight').textContent === '50%%' && %[1]s.cells[2].textContent === '3/4'`, rowJS(tk)),
		fmt.Sprintf(`(%[1]s || {}).textContent`, rowJS(tk)), 10*time.Second, "the new weight and step of "+tk)
	touched := eval[[]string](b, `window.record(window.observer.takeRecords()), [...window.touched]`)
	if !slices.Equal(touched, []string{tk}) {
		t.Errorf("the change of %s touched the DOM of %v; want its row only", tk, touched)
	}
	if m := eval[[]string](b, fmt.Sprintf(`[%s.mark || '', %s.mark || '']`, rowJS(tk), rowJS(ok))); m[0] != "target" || m[1] != "other" {
		t.Errorf("the rows' elements after the change are marked %q; want both kept, not drawn again", m)
	}
	eval[bool](b, `window.observer.disconnect(), true`)
	b.waitList(t, expected(t, f.store, nil), len(all), "the changed row")

	// Finishing moves the rollout behind the active ones; a deletion and
	// a new rollout change the count.
	ro.Status.Phase, ro.ResourceVersion = v1alpha1.PhaseSucceeded, "9002"
	if err := f.store.Upsert(ro); err != nil {
		t.Fatal(err)
	}
	b.waitList(t, expected(t, f.store, nil), len(all), "the finished rollout behind the active ones")
	if err := f.store.Delete(other.Namespace, other.Name); err != nil {
		t.Fatal(err)
	}
	b.waitList(t, expected(t, f.store, nil), len(all)-1, "the deleted rollout gone")
	if err := f.store.Upsert(listRollout("team-0", "aaa-new", v1alpha1.PhaseProgressing, 9003)); err != nil {
		t.Fatal(err)
	}
	if d := b.waitList(t, expected(t, f.store, nil), len(all), "the new rollout"); d.Rows[0].Key != "team-0/aaa-new" {
		t.Errorf("the first row is %s, want the new active rollout team-0/aaa-new", d.Rows[0].Key)
	}
}

// listFilters narrows the list by text, by "active only" and by phase,
// and checks that a reload keeps the filters from the URL.
func listFilters(t *testing.T, f *fixture, b *browser) {
	total := len(expected(t, f.store, nil))
	word := func(s readmodel.Summary) bool { return strings.Contains(s.Namespace+"/"+s.Name, "app-09") }
	b.do(chromedp.SendKeys(chromedp.CSS("#filter-text"), "app-09"))
	b.waitList(t, expected(t, f.store, word), total, "the rollouts whose name has app-09")
	b.waitFor(`location.search === '?q=app-09'`, `location.search`, 5*time.Second, "the text filter in the URL")

	activeWord := func(s readmodel.Summary) bool { return word(s) && s.Active }
	b.do(chromedp.Click(chromedp.CSS("#filter-active")))
	want := expected(t, f.store, activeWord)
	if len(want) == 0 {
		t.Fatal("the seed has no active rollout with app-09")
	}
	b.waitList(t, want, total, "the active rollouts whose name has app-09")
	b.waitFor(`location.search === '?q=app-09&active=1'`, `location.search`, 5*time.Second, "both filters in the URL")
	b.screenshot("list-filtered")

	b.do(chromedp.Reload())
	b.waitFor(`document.getElementById('list').dataset.loaded === 'true'`, `document.getElementById('list').dataset`, 20*time.Second, "the list to load again")
	if v := eval[[]string](b, `[document.getElementById('filter-text').value, String(document.getElementById('filter-active').checked)]`); v[0] != "app-09" || v[1] != "true" {
		t.Errorf("after a reload the filters are %q, want [app-09 true]", v)
	}
	b.waitList(t, want, total, "the same rows after a reload")

	paused := func(s readmodel.Summary) bool { return s.Phase == v1alpha1.PhasePaused }
	b.do(chromedp.Navigate(f.srv.URL + "/?phase=Paused"))
	if v := eval[string](b, `document.getElementById('filter-phase').value`); v != "Paused" {
		t.Errorf("the phase filter from the URL is %q, want Paused", v)
	}
	b.waitList(t, expected(t, f.store, paused), total, "the paused rollouts")

	b.do(chromedp.Navigate(f.srv.URL + "/?q=no-such-rollout"))
	b.waitList(t, nil, total, "no rows")
	b.waitFor(`document.getElementById('empty').textContent === 'No rollout matches these filters.' && !document.getElementById('empty').hidden`,
		`document.getElementById('empty').textContent`, 5*time.Second, "the empty filter's message")
}

// TestListInBrowserAt10000Rollouts: at 10,000 rollouts the page still
// draws only a window of rows, and its bottom is the last rollout.
func TestListInBrowserAt10000Rollouts(t *testing.T) {
	const n = 10_000
	f := newFixtureWith(t, false, seedList(n))
	b := newBrowser(t)
	b.login(f.srv.URL, viewerToken)
	all := expected(t, f.store, nil)
	b.waitFor(`document.getElementById('list').dataset.loaded === 'true'`, `document.getElementById('list').dataset`, 60*time.Second, "the list to load")
	if d := b.waitList(t, all, n, "the first rows"); len(d.Rows) > 60 {
		t.Errorf("the page drew %d rows for %d rollouts, want at most 60", len(d.Rows), n)
	}
	eval[bool](b, `(s => { s.scrollTop = s.scrollHeight; return true })(document.getElementById('scroller'))`)
	last := all[n-1].Namespace + "/" + all[n-1].Name
	b.waitFor(fmt.Sprintf(`[...document.querySelectorAll('#rows tr.row')].slice(-1).map((tr) => tr.dataset.key)[0] === %q`, last),
		`[...document.querySelectorAll('#rows tr.row')].slice(-1).map((tr) => tr.dataset.key)`, 10*time.Second, "the last rollout at the bottom")
	if d := b.waitList(t, all, n, "the last rows"); len(d.Rows) > 60 || d.First+len(d.Rows) != n {
		t.Errorf("at the bottom the page drew %d rows from %d, want a window ending at %d", len(d.Rows), d.First, n)
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestListPageKeepsTheFiltersOfItsURL: the page's form shows the filters
// of its URL, so that a link opens the list as it was.
func TestListPageKeepsTheFiltersOfItsURL(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, viewerToken))
	resp, page := get(t, c, f.srv.URL+"/?q=shop+check&phase=Paused&active=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the filtered list: %s", resp.Status)
	}
	for _, want := range []string{`id="filter-text" name="q" value="shop check"`, `<option value="Paused" selected>`, `value="1" checked`} {
		if !strings.Contains(page, want) {
			t.Errorf("the filtered list page lacks %q", want)
		}
	}
	if strings.Count(page, " selected>") != 1 {
		t.Errorf("the page selects %d phases, want 1", strings.Count(page, " selected>"))
	}
}

// TestListPageRefusesBadFilters: a filter that does not parse is a 400
// that says what is wrong, not a list that ignores it.
func TestListPageRefusesBadFilters(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, viewerToken))
	for query, want := range map[string]string{
		"phase=Running":           `there is no phase &#34;Running&#34;; the phases are Progressing, Paused, Pending, Succeeded, RolledBack, Aborted, Failed`,
		"active=yes":              `active=&#34;yes&#34;: give active=1`,
		"q=a&q=b":                 `the filter q is given 2 times`,
		"phase=paused":            `there is no phase &#34;paused&#34;`,
		"namespace=a&namespace=b": `the filter namespace is given 2 times`,
	} {
		resp, page := get(t, c, f.srv.URL+"/?"+query)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, want) {
			t.Errorf("GET /?%s: %s, want 400 saying %q; page:\n%s", query, resp.Status, want, page)
		}
	}
}
