package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	cbrowser "github.com/serin-dev/serin/test/browser"
	"github.com/serin-dev/serin/test/stack"
)

// browser is one headless Chromium tab (test/browser), with the helpers
// the console's tests here use.
type browser struct {
	t   testing.TB
	ctx context.Context
	tab *cbrowser.Tab
}

// newBrowser starts Chromium for the test; a missing browser fails it.
func newBrowser(t testing.TB) *browser {
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

// eval returns the value of a JavaScript expression, decoded into T.
func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls the JavaScript expression cond, on the page as it is (no
// reload), until it is true; on a timeout it fails with the value of
// show.
func (b *browser) waitFor(cond, show string, timeout time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if eval[bool](b, "Boolean("+cond+")") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.screenshot("failure")
	b.t.Fatalf("timed out after %v waiting for %s; %s is %s", timeout, what, show, eval[string](b, "JSON.stringify("+show+")"))
}

// login signs in through the form.
func (b *browser) login(base, token string) {
	b.t.Helper()
	b.do(chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#user")))
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
	path := filepath.Join(dir, "web-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

// errors returns the console messages that are errors or exceptions.
func (b *browser) errors() []string { return b.errorsBut(nil) }

// errorsBut is errors without those that expected reports as expected (a
// refusal the test provoked, which the browser logs as an error of the
// request); nil expects none.
func (b *browser) errorsBut(expected func(chromedp.ConsoleMessage) bool) []string {
	var out []string
	for _, m := range b.errorMessages() {
		if expected == nil || !expected(m) {
			out = append(out, fmt.Sprintf("%s: %s (%s:%d)", m.Type, strings.TrimSpace(m.Text), m.URL, m.Line))
		}
	}
	return out
}

// errorMessages returns the console messages that are errors or
// exceptions, whole.
func (b *browser) errorMessages() []chromedp.ConsoleMessage {
	return b.tab.Errors(nil)
}
