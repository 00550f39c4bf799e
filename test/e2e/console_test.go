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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/test/apitest"

	"github.com/chromedp/chromedp"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
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
	console, err := web.New(web.Options{Store: store, Authenticator: tokens, Authorizer: tokens, TraceURL: st.JaegerQueryURL + "/trace/"})
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
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
	// ignore, when set, drops expected messages from errors.
	ignore func(chromedp.ConsoleMessage) bool
}

// newBrowser starts Debian's Chromium (installing it when missing) with a
// fresh profile at laptop size. A missing browser fails the test.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if err := stack.Ensure(ctx, os.Stderr, "chromium"); err != nil {
		t.Fatalf("chromium is needed for the console test: %v", err)
	}
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("chromium is needed for the console test: %v", err)
	}
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { _ = chromedp.Cancel(bctx); bcancel() })
	b := &browser{t: t, ctx: bctx}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.msgs = append(b.msgs, m)
			b.mu.Unlock()
		}
	}()
	return b
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
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		if b.ignore != nil && b.ignore(m) {
			continue
		}
		if m.IsException() || m.Type == chromedp.ConsoleType("error") || m.Type == chromedp.ConsoleType("assert") {
			out = append(out, fmt.Sprintf("%s: %s (%s:%d)", m.Type, strings.TrimSpace(m.Text), m.URL, m.Line))
		}
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
