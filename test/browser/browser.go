// Package browser starts the headless Chromium that the console's tests
// drive, in web/ and in test/e2e, and keeps the console messages its pages
// write. It is for tests only.
package browser

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/serin-dev/serin/test/stack"
)

// Tab is one headless Chromium tab with every console message its pages
// wrote.
type Tab struct {
	// Ctx is the tab's chromedp context; it ends with the test.
	Ctx  context.Context
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// Start starts Debian's Chromium (installing it when missing) with a
// fresh profile at laptop size. A missing browser fails the test: the
// console's tests never skip.
func Start(t testing.TB) *Tab {
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
	tab := &Tab{Ctx: bctx}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tab.mu.Lock()
			tab.msgs = append(tab.msgs, m)
			tab.mu.Unlock()
		}
	}()
	return tab
}

// Errors returns the console messages that are errors, exceptions or
// failed assertions, in order, except those ignore accepts (nil ignores
// none).
func (tab *Tab) Errors(ignore func(chromedp.ConsoleMessage) bool) []chromedp.ConsoleMessage {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	var out []chromedp.ConsoleMessage
	for _, m := range tab.msgs {
		if ignore != nil && ignore(m) {
			continue
		}
		if m.IsException() || m.Type == chromedp.ConsoleType("error") || m.Type == chromedp.ConsoleType("assert") {
			out = append(out, m)
		}
	}
	return out
}
