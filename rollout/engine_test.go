package rollout

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func TestRollbackEventCarriesWhyAndHowLong(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2"}}
	ro.Spec.Notifications = &v1alpha1.Notifications{Channels: []string{"oncall"}, Runbook: "https://wiki.example.com/checkout"}
	ro.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, CurrentStep: 1, Message: "rolled back",
		Analysis: v1alpha1.AnalysisStatus{
			FirstFailureAt: ptrTime(t0.Add(10 * time.Second)),
			History: []v1alpha1.AnalysisTick{
				{Time: metav1.NewTime(t0), Verdict: "Pass"},
				{Time: metav1.NewTime(t0.Add(8 * time.Second)), Verdict: "Pass"},
				{Time: metav1.NewTime(t0.Add(10 * time.Second)), Verdict: "Fail"},
			},
			Checks: []v1alpha1.CheckStatus{
				{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail", Canary: 840, Stable: 95, Limit: 124, Unit: "ms", TraceID: "abc"},
				{Check: "error-rate", Source: "prometheus", Verdict: "Pass"},
				{Check: "latency-p99", Source: "prometheus", Verdict: "Fail", DryRun: true},
			},
		}}
	ev := rollbackEvent(ro, t0.Add(11*time.Second), 25)
	if ev.Weight != 25 || len(ev.Checks) != 1 || ev.Checks[0].Hop != "checkout → payments" || ev.Checks[0].TraceID != "abc" {
		t.Fatalf("event %+v: want weight 25 and the one acting failed check with its trace", ev)
	}
	if got := ev.DetectedAt.Sub(ev.LastPassAt); got != 2*time.Second {
		t.Errorf("detected within %v of the last pass, want 2s", got)
	}
	if got := ev.CompletedAt.Sub(ev.DetectedAt); got != time.Second {
		t.Errorf("rolled back in %v, want 1s", got)
	}
	if len(ev.Channels) != 1 || ev.Channels[0] != "oncall" {
		t.Errorf("channels %v, want the rollout's", ev.Channels)
	}
	if ev.Runbook != "https://wiki.example.com/checkout" {
		t.Errorf("runbook %q, want the rollout's", ev.Runbook)
	}
}

func TestRollbackEventOfACanaryBadFromTheStart(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bad"}}
	ro.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, StepStartedAt: ptrTime(t0),
		Analysis: v1alpha1.AnalysisStatus{FirstFailureAt: ptrTime(t0.Add(3 * time.Second)),
			History: []v1alpha1.AnalysisTick{{Time: metav1.NewTime(t0.Add(3 * time.Second)), Verdict: "Fail"}}}}
	ev := rollbackEvent(ro, t0.Add(4*time.Second), 10)
	if got := ev.DetectedAt.Sub(ev.LastPassAt); got != 3*time.Second {
		t.Errorf("detected within %v of the step's start, want 3s", got)
	}
}

func TestSinceTick(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		after, took, want time.Duration
	}{
		{time.Second, 150 * time.Millisecond, 850 * time.Millisecond},
		{time.Second, 0, time.Second},
		{time.Second, 2 * time.Second, time.Millisecond}, // overdue: run now
		{0, 150 * time.Millisecond, 0},                   // no tick due
	} {
		if got := sinceTick(tc.after, start, start.Add(tc.took)); got != tc.want {
			t.Errorf("sinceTick(%v, took %v) = %v, want %v", tc.after, tc.took, got, tc.want)
		}
	}
}

// A rollback's Kubernetes Event lists each failed check once, one a line,
// with its source and window, and not the engine's joined reason.
func TestRollbackEventNote(t *testing.T) {
	since := metav1.NewTime(t0.Add(-42 * time.Second))
	st := v1alpha1.RolloutStatus{Analysis: v1alpha1.AnalysisStatus{Checks: []v1alpha1.CheckStatus{
		{Check: "latency-p99", Kind: "latency-p99", Hop: "checkout → payments", Source: "prometheus", Verdict: "Fail", Canary: 780, Stable: 48, StableRequests: 900, Limit: 50, Unit: "ms", Since: &since},
		{Check: "latency-p99", Kind: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail", Canary: 812, Stable: 51, StableRequests: 300, Limit: 52, Unit: "ms", Since: &since},
		{Check: "error-rate", Kind: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.1, Limit: 1, Unit: "%", Since: &since},
		{Check: "error-rate", Kind: "error-rate", Hop: "checkout → payments", Source: "prometheus", Verdict: "Fail", DryRun: true},
	}}}
	ev := Event{Kind: EventRolledBack, Time: t0, Step: 1, Steps: 4, Weight: 25, Checks: failedChecks(st),
		Message: "rolled back: latency-p99 on checkout → payments failed; latency-p99 on checkout → payments (traces) failed; traffic returned to stable (100/0)"}
	note := ev.Note()
	want := "rolled back at step 2/4 (25%); traffic returned to stable (100/0). Failed:\n" +
		"latency-p99 on checkout → payments from metrics, since the analysis began, 42 s of data: canary 780 ms vs stable 48 ms, limit 50 ms (×15.6 the limit)\n" +
		"latency-p99 on checkout → payments from traces, since the analysis began, 42 s of data: canary 812 ms vs stable 51 ms, limit 52 ms (×15.6 the limit)"
	if note != want {
		t.Errorf("note =\n%s\nwant\n%s", note, want)
	}

	// Many failures: as many lines as fit in the 1 KiB an Event note
	// takes, then how many more.
	var many []v1alpha1.CheckStatus
	for i := range 40 {
		c := st.Analysis.Checks[0]
		c.Hop = fmt.Sprintf("checkout → service-%02d", i)
		many = append(many, c)
	}
	ev.Checks = failedChecks(v1alpha1.RolloutStatus{Analysis: v1alpha1.AnalysisStatus{Checks: many}})
	note = ev.Note()
	if len(note) > MaxEventNote || !strings.Contains(note, "service-00 from metrics") || !regexp.MustCompile(`\n… and \d+ more$`).MatchString(note) {
		t.Errorf("note of %d bytes:\n%s\nwant at most %d, the first failure and a count of the rest", len(note), note, MaxEventNote)
	}

	// Other events, and a rollback without failed checks, say their message.
	for _, ev := range []Event{{Kind: EventAborted, Message: "aborted by bob"}, {Kind: EventRolledBack, Message: "rolled back: no data for 1m0s"}} {
		if got := ev.Note(); got != ev.Message {
			t.Errorf("%s note = %q, want the message", ev.Kind, got)
		}
	}
	if got := (Event{Kind: EventWarning, Message: strings.Repeat("é", 600)}).Note(); len(got) > MaxEventNote || !utf8.ValidString(got) {
		t.Errorf("a long message's note has %d bytes (valid UTF-8: %v)", len(got), utf8.ValidString(got))
	}
}
