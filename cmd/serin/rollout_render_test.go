package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// rolledBackView is a rollout as the API shows it after a hop's latency
// failed: the failing check is long enough that a 120-column line cuts
// off its evidence, an 80-column one its stable side, and a 40-column one
// even its limit.
func rolledBackView() api.Rollout {
	r := api.Rollout{Namespace: "shop", Name: "checkout-v2", Phase: v1alpha1.PhaseRolledBack, Step: "step 2/4 (25%)"}
	r.Status.Phase = v1alpha1.PhaseRolledBack
	r.Status.Analysis.LastVerdict = "Fail"
	r.Status.Message = "rolled back: latency-p99 on checkout → payments failed; traffic returned to stable (100/0)"
	r.Checks = []api.CheckView{
		{Check: "latency-p99", Hop: "checkout → payments", Source: "traces", Verdict: "Fail", Failing: true,
			Canary: "840 ms [812–871 ms]", Stable: "95 ms [91–99 ms]", Limit: "124 ms", Evidence: "evidence 1/α reached at 12 s"},
		{Check: "error-rate", Hop: "inbound", Source: "metrics", Verdict: "Pass", Canary: "0.1%", Stable: "0.1%", Limit: "1%"},
	}
	return r
}

// drawAt draws r as watch does on a terminal of the given width and
// returns the lines written.
func drawAt(r api.Rollout, width int) []string {
	var out strings.Builder
	w := &watcher{cio: cliIO{Stdout: &out, TTY: true, Width: func() int { return width }, Getenv: func(string) string { return "" }}}
	w.draw(r)
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

func TestWatchFrameListsTheFailingChecks(t *testing.T) {
	lines := drawAt(rolledBackView(), 200)
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"[--------------------]   0%  step 2/4 (25%)  RolledBack",
		"FAIL latency-p99 checkout → payments (traces): limit 124 ms, canary 840 ms [812–871 ms], stable 95 ms [91–99 ms], evidence 1/α reached at 12 s",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("a 200-column frame lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "error-rate") {
		t.Errorf("a passing check is listed among the failing ones:\n%s", text)
	}
}

// TestWatchDrawsToTheTerminalWidth: every line fits the width (a wrapped
// line would break the redraw), and the width is the terminal's.
func TestWatchDrawsToTheTerminalWidth(t *testing.T) {
	for _, tc := range []struct {
		width int
		shown string // what still fits
		cut   string // what does not
	}{
		{160, "evidence 1/α reached at 12 s", ""},
		{120, "stable 95 ms [91–99 ms]", "evidence 1/α"},
		{80, "limit 124 ms", "stable"},
		{40, "FAIL latency-p99", "limit"},
	} {
		lines := drawAt(rolledBackView(), tc.width)
		text := strings.Join(lines, "\n")
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n >= tc.width {
				t.Errorf("width %d: a line of %d characters: %q", tc.width, n, l)
			}
		}
		if !strings.Contains(text, tc.shown) || (tc.cut != "" && strings.Contains(text, tc.cut)) {
			t.Errorf("width %d: want %q shown and %q cut off:\n%s", tc.width, tc.shown, tc.cut, text)
		}
	}
}

func TestCLIWidth(t *testing.T) {
	env := func(columns string) func(string) string {
		return func(k string) string {
			if k == "COLUMNS" {
				return columns
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name    string
		term    func() int
		columns string
		want    int
	}{
		{"the terminal's width", func() int { return 132 }, "100", 132},
		{"not a terminal: $COLUMNS", func() int { return 0 }, "100", 100},
		{"no terminal library answer: $COLUMNS", nil, "100", 100},
		{"neither: 80", func() int { return 0 }, "", 80},
		{"a $COLUMNS that is not a width: 80", nil, "wide", 80},
	} {
		if got := (cliIO{Width: tc.term, Getenv: env(tc.columns)}).width(); got != tc.want {
			t.Errorf("%s: width %d, want %d", tc.name, got, tc.want)
		}
	}
}

// openPTY opens a pseudo-terminal of cols columns: what the CLI writes to
// the returned terminal side can be read from the other.
func openPTY(t *testing.T, cols uint16) (reader, terminal *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("name the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the terminal side: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: cols}); err != nil {
		t.Fatalf("size the terminal: %v", err)
	}
	return m, s
}

// TestRolloutWatchInATerminal runs watch in a pseudo-terminal of 120
// columns, with no $COLUMNS (bash does not export it), against the real
// API: the terminal's own width is used, so the failing check's limit and
// both sides' values are on screen, where 80 columns would cut them.
func TestRolloutWatchInATerminal(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "tty", "vs")
	e.setStatus(t, ns, "tty", func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CurrentStep, s.CanaryWeight = v1alpha1.PhaseRolledBack, 1, 0
		s.Message = "rolled back: latency-p99 on checkout → payments failed"
		s.Analysis = v1alpha1.AnalysisStatus{LastVerdict: "Fail", Checks: []v1alpha1.CheckStatus{
			{Check: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.1, Stable: 0.1, Limit: 1, Unit: "%"},
			{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail",
				Canary: 840, CanaryLow: 812, CanaryHigh: 871, Stable: 95, StableLow: 91, StableHigh: 99, Limit: 124, Unit: "ms",
				Evidence: 2e4, Threshold: 100, EvidenceAtSeconds: 12},
		}}
	})
	reader, tty := openPTY(t, 120)
	if !term.IsTerminal(int(tty.Fd())) {
		t.Fatal("the pseudo-terminal is not a terminal")
	}
	screen := make(chan string, 1)
	go func() { b, _ := io.ReadAll(reader); screen <- string(b) }() // ends when the terminal side closes

	var stderr lockedBuffer
	cio := e.operator().io(nil, &stderr)
	cio.Stdout, cio.TTY, cio.Width = tty, true, terminalWidth(tty)
	code := rolloutMain(t.Context(), []string{"watch", "-n", ns, "tty"}, cio)
	tty.Close()
	out := <-screen
	if code != exitNotSucceded {
		t.Errorf("exit %d, want 3; stderr %q", code, stderr.String())
	}
	want := "FAIL latency-p99 checkout → payments (traces): limit 124 ms, canary 840 ms [812–871 ms], stable 95 ms [91–99 ms]"
	if !strings.Contains(out, want) {
		t.Errorf("the 120-column terminal shows\n%s\nwant the failing check %q", out, want)
	}
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(strings.TrimRight(l, "\r")); n >= 120 {
			t.Errorf("a line of %d characters on a 120-column terminal: %q", n, l)
		}
	}
}
