package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/serin-dev/serin/test/stack"
)

// browser is one headless Chromium tab, with every console message the
// pages wrote. (test/e2e has its own, for the console against the real
// controller; test packages cannot share test files.)
type browser struct {
	t    testing.TB
	ctx  context.Context
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// newBrowser starts Debian's Chromium (installing it when missing) with a
// fresh profile at laptop size. A missing browser fails the test.
func newBrowser(t testing.TB) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if err := stack.Ensure(ctx, os.Stderr, "chromium"); err != nil {
		t.Fatalf("chromium is needed for the console's browser tests: %v", err)
	}
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("chromium is needed for the console's browser tests: %v", err)
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
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []chromedp.ConsoleMessage
	for _, m := range b.msgs {
		if m.IsException() || m.Type == chromedp.ConsoleType("error") || m.Type == chromedp.ConsoleType("assert") {
			out = append(out, m)
		}
	}
	return out
}
