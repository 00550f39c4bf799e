package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/test/apitest"

	"github.com/chromedp/chromedp"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	cbrowser "github.com/serin-dev/serin/test/browser"
	"github.com/serin-dev/serin/test/meshsim"
	"github.com/serin-dev/serin/test/stack"
	"github.com/serin-dev/serin/web"
)

// TestConsoleInBrowser drives the console in headless Chromium against the
// real controller on the local stack: a live weight change without a
// reload, an abort with the button, a rollback reason after a fault, and
// a viewer who sees no buttons. The browser console must stay free of
// errors. Screenshots go to test/artifacts/.
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	e := newMeshEnv(t, 50, "")
	e.startController()
	srv := consoleServer(t, e.env)
	base := srv.URL
	page := func(name string) string { return base + "/rollouts/" + e.ns + "/" + name }

	b.login(base, consoleOperatorToken)

	// 1. A rollout started through the API: its weight changes on the
	// open page, with no reload (the marker set on window survives).
	startByAPI(t, base, e.env, "live", 3*time.Second)
	b.do(chromedp.Navigate(page("live")), chromedp.WaitVisible(chromedp.CSS("#weight")))
	b.eval(`window.serinMarker = "same page"; ""`)
	first := b.text("weight")
	seen := []string{first}
	b.waitText("weight", 90*time.Second, "the canary weight to pass 10%", func(s string) bool {
		if s != seen[len(seen)-1] {
			seen = append(seen, s)
		}
		return s != "0%" && s != "10%" && s != ""
	})
	if m := b.eval(`window.serinMarker || ""`); m != "same page" {
		t.Fatalf("the page reloaded while the weight changed (weights seen: %v)", seen)
	}
	t.Logf("weights seen live on the page: %v", seen)
	b.screenshot("live-weight")
	if code, body := apiCall(t, http.MethodPost, base+"/api/v1/rollouts/"+e.ns+"/live/abort", consoleOperatorToken,
		map[string]string{"reason": "make room for the next test"}); code != http.StatusOK {
		t.Fatalf("abort live through the API: %d %s", code, body)
	}
	e.waitPhase("live", v1alpha1.PhaseAborted, 30*time.Second)
	e.waitRouteRestored("live")

	// 2. Abort with the button, giving a reason.
	startByAPI(t, base, e.env, "doomed", time.Minute)
	b.do(chromedp.Navigate(page("doomed")))
	b.waitText("phase", 30*time.Second, "doomed to progress", func(s string) bool { return s == "Progressing" })
	b.do(chromedp.SendKeys(chromedp.CSS("#abort-reason"), "bad build"), chromedp.Click(chromedp.CSS("#op-abort")))
	b.waitText("phase", 30*time.Second, "the Aborted phase", func(s string) bool { return s == "Aborted" })
	b.waitText("outcome", 10*time.Second, "the abort reason", func(s string) bool { return strings.Contains(s, "Aborted") })
	if ro := e.get("doomed"); ro.Status.Phase != v1alpha1.PhaseAborted {
		t.Errorf("doomed is %s after the button, want Aborted", ro.Status.Phase)
	}
	b.screenshot("aborted")
	e.waitRouteRestored("doomed")

	// 3. A faulty canary: the rollback reason appears on its open page.
	e.fault("v2", meshsim.Fault{ErrorRate: 0.2})
	startByAPI(t, base, e.env, "faulty", 30*time.Second)
	b.do(chromedp.Navigate(page("faulty")))
	reason := b.waitText("outcome", 90*time.Second, "the rollback reason", func(s string) bool {
		return strings.Contains(s, "Rolled back") && strings.Contains(s, "error-rate")
	})
	t.Logf("rollback reason on the page: %s", reason)
	b.screenshot("rolled-back")
	b.do(chromedp.Navigate(base + "/"))
	b.waitText("rows", 10*time.Second, "the list to show the three rollouts", func(s string) bool {
		return strings.Contains(s, "faulty") && strings.Contains(s, "RolledBack") && strings.Contains(s, "doomed")
	})
	b.screenshot("list")

	// 4. A viewer sees the rollout but no buttons.
	b.logout()
	b.login(base, consoleViewerToken)
	b.do(chromedp.Navigate(page("faulty")), chromedp.WaitVisible(chromedp.CSS("#outcome")))
	if n := b.eval(`String(document.querySelectorAll("button[data-op], #abort-form, #controls").length)`); n != "0" {
		t.Errorf("the viewer's page has %s operator controls", n)
	}
	b.screenshot("viewer")

	if missingStreams(t, base) {
		t.Logf("the API does not serve /events and /series yet: the console polled, and their 404s are not counted")
		b.ignore = func(m chromedp.ConsoleMessage) bool {
			return strings.Contains(m.Text, "status of 404") && (strings.HasSuffix(m.URL, "/events") || strings.HasSuffix(m.URL, "/series"))
		}
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// Tokens of the console test's users.
const (
	consoleOperatorToken = "console-operator-token-0123456789"
	consoleViewerToken   = "console-viewer-token-0123456789"
)

// consoleServer serves the API and the console in-process, on one
// loopback server, as the controller binary will: a read model fed by an
// informer on the test's namespace, static tokens, and writes through the
// Kubernetes API.
func consoleServer(t *testing.T, e *env) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, store, err := apitest.ReadModel(ctx, st.RESTConfig(), e.ns)
	must(t, err)

	tokenFile := filepath.Join(t.TempDir(), "tokens")
	must(t, os.WriteFile(tokenFile, []byte(fmt.Sprintf("%s,olga,operator\n%s,vic,viewer\n", consoleOperatorToken, consoleViewerToken)), 0o600))
	tokens, err := api.LoadStaticTokens(tokenFile)
	must(t, err)
	console, err := web.New(web.Options{Store: store, Authenticator: tokens, Authorizer: tokens})
	must(t, err)
	apiHandler, err := api.New(api.Options{Store: store, Writer: api.KubeWriter{Client: e.c}, Authenticator: tokens, Authorizer: tokens, Sessions: console})
	must(t, err)
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/", console)
	srv := httptest.NewServer(mux) // 127.0.0.1, a free port
	t.Cleanup(func() {
		srv.CloseClientConnections() // the browser's event streams
		srv.Close()
	})
	return srv
}

// apiCall sends a JSON request to the API with a bearer token and returns
// the status and body.
func apiCall(t *testing.T, method, url, token string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// startByAPI starts a rollout through POST /api/v1/rollouts.
func startByAPI(t *testing.T, base string, e *env, name string, step time.Duration) {
	t.Helper()
	r := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"}}
	analysed(step, nil)(r)
	code, body := apiCall(t, http.MethodPost, base+"/api/v1/rollouts", consoleOperatorToken,
		api.CreateRequest{Namespace: e.ns, Name: name, Spec: r.Spec})
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/rollouts %s: %d %s", name, code, body)
	}
}

// browser is one headless Chromium tab, with every console message the
// pages wrote.
type browser struct {
	t   *testing.T
	ctx context.Context
	tab *cbrowser.Tab
	// ignore, when set, drops expected messages from errors.
	ignore func(chromedp.ConsoleMessage) bool
}

// newBrowser starts Chromium for the test (test/browser); a missing
// browser fails it.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	tab := cbrowser.Start(t)
	return &browser{t: t, ctx: tab.Ctx, tab: tab}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.screenshot("failure")
		b.t.Fatalf("browser: %v", err)
	}
}

// eval returns the string value of a JavaScript expression.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// text is the text of the element with the id, or "" when it is absent.
func (b *browser) text(id string) string {
	return b.eval(fmt.Sprintf(`(document.getElementById(%q) || {}).textContent || ""`, id))
}

// waitText polls the element's text, as it is on the page now (no
// reload), until cond holds.
func (b *browser) waitText(id string, timeout time.Duration, what string, cond func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = b.text(id); cond(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.screenshot("failure")
	b.t.Fatalf("timed out after %v waiting for %s; #%s is %q", timeout, what, id, last)
	return ""
}

// screenshot saves a full-page PNG under test/artifacts and logs its path.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(stack.RepoRoot(), "test", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

// login signs in through the form.
func (b *browser) login(base, token string) {
	b.t.Helper()
	b.do(chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#user")))
}

func (b *browser) logout() {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#token")))
}

// errors returns the console messages that are errors or exceptions.
func (b *browser) errors() []string {
	var out []string
	for _, m := range b.tab.Errors(b.ignore) {
		out = append(out, fmt.Sprintf("%s: %s (%s:%d)", m.Type, strings.TrimSpace(m.Text), m.URL, m.Line))
	}
	return out
}

// missingStreams reports whether the API answers 404 for its event
// stream, which another change is adding. Until it lands the console
// falls back to polling, and the browser logs the 404s of /events and
// /series; once it lands, this returns false and every error counts.
func missingStreams(t *testing.T, base string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+consoleViewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	cancel() // an open stream ends here
	resp.Body.Close()
	return resp.StatusCode == http.StatusNotFound
}

// TestConsoleListAt1000Rollouts loads the list page in headless Chromium
// with 1,000 Rollouts on the real API server, seen through a real
// informer: the page draws a window of rows, not 1,000; the active
// rollouts come first; scrolling to the bottom shows the last one; the
// text filter narrows the list and stays in the URL; and a status change
// written to the API server reaches its row through the list stream,
// rewriting that row in place.
func TestConsoleListAt1000Rollouts(t *testing.T) {
	const n = 1000
	e := newEnv(t)
	names := make([]string, n)
	var active []string // every 50th is Progressing, every 50th from 25 has no status yet (Pending)
	g, ctx := errgroup.WithContext(e.ctx)
	g.SetLimit(16)
	for i := range n {
		names[i] = fmt.Sprintf("app-%03d", i)
		phase := v1alpha1.PhaseSucceeded
		switch i % 50 {
		case 0:
			phase = v1alpha1.PhaseProgressing
		case 25:
			phase = ""
		}
		if phase == "" || phase == v1alpha1.PhaseProgressing {
			active = append(active, names[i])
		}
		g.Go(func() error {
			ro := &v1alpha1.Rollout{
				ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: names[i]},
				Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
			}
			if err := e.c.Create(ctx, ro); err != nil {
				return fmt.Errorf("create Rollout %s: %w", names[i], err)
			}
			if phase == "" {
				return nil
			}
			ro.Status = v1alpha1.RolloutStatus{Phase: phase, CanaryWeight: 10}
			if err := e.c.Status().Update(ctx, ro); err != nil {
				return fmt.Errorf("update the status of Rollout %s: %w", names[i], err)
			}
			return nil
		})
	}
	must(t, g.Wait())
	srv := consoleServer(t, e)
	b := newBrowser(t)
	b.login(srv.URL, consoleViewerToken)

	const rowsJS = `[...document.querySelectorAll('#rows tr.row')]`
	b.waitJS(fmt.Sprintf(`document.getElementById('list').dataset.loaded === 'true' && document.getElementById('list').dataset.total === '%d'`, n),
		30*time.Second, "the list to load 1,000 rollouts")
	drawn := strings.Split(b.eval(rowsJS+`.map((tr) => tr.dataset.key.split('/')[1]).join(' ')`), " ")
	if len(drawn) < 10 || len(drawn) > 60 {
		t.Fatalf("the page drew %d rows for %d rollouts, want a window of 10 to 60", len(drawn), n)
	}
	if want := active[:min(len(active), len(drawn))]; !slices.Equal(drawn[:len(want)], want) {
		t.Errorf("the first rows are %v, want the active rollouts first, by name: %v", drawn[:len(want)], want)
	}
	b.screenshot("list-1000")

	b.eval(`(s => { s.scrollTop = s.scrollHeight; return '' })(document.getElementById('scroller'))`)
	b.waitJS(rowsJS+`.slice(-1).map((tr) => tr.dataset.key).join() === '`+e.ns+`/app-999'`, 10*time.Second, "the last rollout at the bottom")
	if k := b.eval(`String(` + rowsJS + `.length)`); k == "0" || len(k) > 2 {
		t.Errorf("at the bottom the page drew %s rows, want a window", k)
	}

	b.do(chromedp.SendKeys(chromedp.CSS("#filter-text"), "app-99"))
	b.waitJS(`document.getElementById('list').dataset.shown === '10' && location.search === '?q=app-99' && `+
		rowsJS+`.every((tr) => tr.dataset.key.includes('app-99'))`, 10*time.Second, "the text filter to narrow the list to app-990 to app-999")

	// A status change written to the API server rewrites its row, in place.
	b.do(chromedp.Navigate(srv.URL + "/?q=app-000"))
	row := fmt.Sprintf(`document.querySelector('#rows tr.row[data-key="%s/app-000"]')`, e.ns)
	b.waitJS(row+` !== null && `+row+`.querySelector('.weight').textContent === '10%'`, 30*time.Second, "the row of app-000")
	b.waitJS(`document.getElementById('live').classList.contains('on')`, 10*time.Second, "the list stream")
	b.eval(row + `.mark = 'kept'; ''`)
	ro := e.get("app-000")
	ro.Status.CurrentStep, ro.Status.CanaryWeight = 2, 50
	must(t, e.c.Status().Update(e.ctx, ro))
	b.waitJS(row+`.querySelector('.weight').textContent === '50%' && `+row+`.cells[2].textContent === '3/4' && `+row+`.mark === 'kept'`,
		30*time.Second, "the new weight and step on the same row")

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// waitJS polls a JavaScript condition on the page as it is (no reload)
// until it holds.
func (b *browser) waitJS(cond string, timeout time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b.eval(`String(Boolean(`+cond+`))`) == "true" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.screenshot("failure")
	b.t.Fatalf("timed out after %v waiting for %s", timeout, what)
}
