package rollout

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

var berlin = func() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}()

func bt(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, berlin)
}

func TestParseScheduleNamesTheField(t *testing.T) {
	win := func(start string, d time.Duration) v1alpha1.Window {
		return v1alpha1.Window{Start: start, Duration: metav1.Duration{Duration: d}}
	}
	tests := []struct {
		s    v1alpha1.Schedule
		want string
	}{
		{v1alpha1.Schedule{Start: "61 * * * *"}, `spec.schedule.start "61 * * * *"`},
		{v1alpha1.Schedule{Start: "0 9 * * *", TimeZone: "Mars/Olympus"}, `spec.schedule.timeZone "Mars/Olympus"`},
		{v1alpha1.Schedule{Windows: []v1alpha1.Window{win("0 9 * * 1-5", time.Hour), win("0 25 * * *", time.Hour)}}, "spec.schedule.windows[1].start"},
		{v1alpha1.Schedule{Windows: []v1alpha1.Window{win("0 9 * * *", time.Second)}}, "spec.schedule.windows[0].duration"},
		{v1alpha1.Schedule{Freeze: []v1alpha1.FreezePeriod{{From: metav1.NewTime(t0), To: metav1.NewTime(t0)}}}, "spec.schedule.freeze[0]"},
	}
	for _, tc := range tests {
		if _, err := ParseSchedule(&tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSchedule(%+v) = %v, want an error naming %s", tc.s, err, tc.want)
		}
	}
}

func TestCalendarBoundaries(t *testing.T) {
	weekdays := &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "0 9 * * 1-5", Duration: metav1.Duration{Duration: 8 * time.Hour}}}}
	nightly := &v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{{Start: "30 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}}}
	frozen := &v1alpha1.Schedule{Freeze: []v1alpha1.FreezePeriod{{From: metav1.NewTime(bt(2026, 12, 20, 0, 0)), To: metav1.NewTime(bt(2027, 1, 4, 0, 0)), Reason: "holidays"}}}
	tests := []struct {
		name string
		s    *v1alpha1.Schedule
		now  time.Time
		open bool
		next time.Time
		why  string
	}{
		{"just before the window opens", weekdays, bt(2026, 11, 23, 8, 59), false, bt(2026, 11, 23, 9, 0), "next opens at 2026-11-23T09:00:00+01:00"},
		{"the moment it opens", weekdays, bt(2026, 11, 23, 9, 0), true, time.Time{}, ""},
		{"the last minute", weekdays, bt(2026, 11, 23, 16, 59), true, time.Time{}, ""},
		{"the moment it closes", weekdays, bt(2026, 11, 23, 17, 0), false, bt(2026, 11, 24, 9, 0), "outside the deployment windows"},
		{"a Saturday waits for Monday", weekdays, bt(2026, 11, 28, 12, 0), false, bt(2026, 11, 30, 9, 0), ""},
		// On the spring-forward day 02:30 does not exist in Berlin; the
		// cron library skips that day's window.
		{"DST spring forward: no 02:30 that day", nightly, bt(2026, 3, 29, 3, 15), false, bt(2026, 3, 30, 2, 30), ""},
		// On the fall-back day 02:30 happens twice; the window opens at the
		// second one too and closes an hour after it, at 03:30 CET.
		{"DST fall back: the second 02:30 opens it", nightly, time.Date(2026, 10, 25, 2, 15, 0, 0, time.UTC), true, time.Time{}, ""},
		{"DST fall back: closed after 03:30 CET", nightly, time.Date(2026, 10, 25, 2, 31, 0, 0, time.UTC), false, bt(2026, 10, 26, 2, 30), ""},
		{"frozen", frozen, bt(2026, 12, 24, 12, 0), false, bt(2027, 1, 4, 0, 0), "frozen until 2027-01-03T23:00:00Z (holidays)"},
		{"after the freeze", frozen, bt(2027, 1, 4, 0, 0), true, time.Time{}, ""},
		{"no schedule is always open", nil, bt(2026, 12, 24, 12, 0), true, time.Time{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseSchedule(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			open, why, next := c.Open(tc.now)
			if open != tc.open || !next.Equal(tc.next) || !strings.Contains(why, tc.why) {
				t.Errorf("Open(%s) = %v, %q, %s; want %v, ~%q, %s", tc.now, open, why, next, tc.open, tc.why, tc.next)
			}
		})
	}
}

func TestScheduledStartWaitsInPending(t *testing.T) {
	sp := spec()
	sp.Schedule = &v1alpha1.Schedule{Start: "0 22 * * *", TimeZone: "Europe/Berlin"}
	created := bt(2026, 11, 24, 10, 17)
	obs := Observation{Generation: 1, Preflight: &PreflightReport{}, Created: created}

	d := Next(v1alpha1.RolloutStatus{}, sp, obs, created.Add(time.Hour))
	if d.Status.Phase != v1alpha1.PhasePending || d.Status.NextStartAt == nil || !d.Status.NextStartAt.Time.Equal(bt(2026, 11, 24, 22, 0)) {
		t.Fatalf("before the start: %s next %v (%s); want Pending until 22:00 Berlin", d.Status.Phase, d.Status.NextStartAt, d.Status.Message)
	}
	if !strings.Contains(d.Status.Message, "waiting for the scheduled start at 2026-11-24T22:00:00+01:00") || d.RequeueAfter != 10*time.Hour+43*time.Minute {
		t.Errorf("message %q requeue %v", d.Status.Message, d.RequeueAfter)
	}
	d = Next(d.Status, sp, obs, bt(2026, 11, 24, 22, 0))
	if d.Status.Phase != v1alpha1.PhaseProgressing || d.Status.NextStartAt != nil {
		t.Fatalf("at the start time: %s (%s), want Progressing", d.Status.Phase, d.Status.Message)
	}
}

// TestWindowClosesMidStep: the window closes while a step dwells. Hold
// keeps the weight until the next window; Rollback returns to stable; a
// failure while holding still rolls back.
func TestWindowClosesMidStep(t *testing.T) {
	sched := func(outside string) v1alpha1.RolloutSpec {
		sp := spec()
		sp.Schedule = &v1alpha1.Schedule{TimeZone: "Europe/Berlin", OutsideWindow: outside,
			Windows: []v1alpha1.Window{{Start: "0 9 * * 1-5", Duration: metav1.Duration{Duration: 8 * time.Hour}}}}
		return sp
	}
	start := bt(2026, 11, 24, 16, 59) // a Tuesday; the step's 10s dwell ends after 17:00
	st := passed(at(1, start), 3)
	pass := withResult(live(25), analysis.Pass, "ok")

	d := Next(st, sched(""), pass, bt(2026, 11, 24, 17, 1))
	if d.Status.Phase != v1alpha1.PhaseProgressing || d.Status.CurrentStep != 1 || !strings.Contains(d.Status.Message, "holding at 25%") {
		t.Fatalf("after the window closed: %s step %d %q; want holding at step 1", d.Status.Phase, d.Status.CurrentStep, d.Status.Message)
	}
	if d.Status.NextStartAt == nil || !d.Status.NextStartAt.Time.Equal(bt(2026, 11, 25, 9, 0)) {
		t.Errorf("next window %v, want Wednesday 09:00", d.Status.NextStartAt)
	}
	held := d.Status
	d = Next(held, sched(""), pass, bt(2026, 11, 25, 9, 0))
	if d.Status.CurrentStep != 2 || d.Status.NextStartAt != nil {
		t.Errorf("when the next window opens: step %d (%q), want step 2", d.Status.CurrentStep, d.Status.Message)
	}
	fail := Observation{Generation: 1, LiveWeight: 25, LiveKnown: true, Result: &analysis.Result{Verdict: analysis.Fail, Reason: "error rate 20%"}}
	if d = Next(held, sched(""), fail, bt(2026, 11, 24, 23, 0)); d.Status.Phase != v1alpha1.PhaseRolledBack {
		t.Errorf("a failure while holding: %s, want RolledBack", d.Status.Phase)
	}
	d = Next(st, sched(v1alpha1.OutsideWindowRollback), pass, bt(2026, 11, 24, 17, 0))
	if d.Status.Phase != v1alpha1.PhaseRolledBack || d.Status.CanaryWeight != 0 || !strings.Contains(d.Status.Message, "deployment window closed") {
		t.Errorf("with outsideWindow Rollback: %s weight %d %q", d.Status.Phase, d.Status.CanaryWeight, d.Status.Message)
	}
}

func TestFreezeBlocksStartAndAdvance(t *testing.T) {
	sp := spec()
	sp.Schedule = &v1alpha1.Schedule{OutsideWindow: v1alpha1.OutsideWindowRollback, Freeze: []v1alpha1.FreezePeriod{
		{From: metav1.NewTime(t0), To: metav1.NewTime(t0.Add(time.Hour)), Reason: "incident review"}}}
	d := Next(v1alpha1.RolloutStatus{}, sp, Observation{Generation: 1, Preflight: &PreflightReport{}}, t0.Add(time.Minute))
	if d.Status.Phase != v1alpha1.PhasePending || !strings.Contains(d.Status.Message, "incident review") {
		t.Fatalf("start during a freeze: %s %q, want Pending naming the freeze", d.Status.Phase, d.Status.Message)
	}
	d = Next(passed(at(1, t0.Add(-time.Minute)), 3), sp, withResult(live(25), analysis.Pass, "ok"), t0.Add(time.Minute))
	if d.Status.Phase != v1alpha1.PhaseProgressing || d.Status.CurrentStep != 1 {
		t.Errorf("advance during a freeze: %s step %d, want held at step 1 (a freeze holds, never rolls back)", d.Status.Phase, d.Status.CurrentStep)
	}
}

func TestInvalidScheduleFailsBeforeWriting(t *testing.T) {
	sp := spec()
	sp.Schedule = &v1alpha1.Schedule{Start: "0 9 * * *", TimeZone: "Nowhere/Special"}
	d := Next(v1alpha1.RolloutStatus{}, sp, Observation{Generation: 1, Preflight: &PreflightReport{}}, t0)
	if d.Status.Phase != v1alpha1.PhaseFailed || d.Status.CanaryWeight != 0 || !strings.Contains(d.Status.Message, "spec.schedule.timeZone") {
		t.Fatalf("%s weight %d %q: want Failed naming spec.schedule.timeZone", d.Status.Phase, d.Status.CanaryWeight, d.Status.Message)
	}
}

// TestScheduleThatNeverFiresIsRefused: February 30th and April 31st have
// no activation. The cron library answers the zero time for them, which
// once meant "start now" and "always open"; they are refused, naming the
// field, by ParseSchedule and so by ValidateSpec (the REST API).
func TestScheduleThatNeverFiresIsRefused(t *testing.T) {
	for _, tc := range []struct {
		s    v1alpha1.Schedule
		want string
	}{
		{v1alpha1.Schedule{Start: "0 0 30 2 *"}, `spec.schedule.start "0 0 30 2 *": never fires`},
		{v1alpha1.Schedule{TimeZone: "Europe/Berlin", Windows: []v1alpha1.Window{
			{Start: "0 9 * * 1-5", Duration: metav1.Duration{Duration: time.Hour}},
			{Start: "0 9 31 4 *", Duration: metav1.Duration{Duration: 8 * time.Hour}}}},
			`spec.schedule.windows[1].start "0 9 31 4 *": never fires`},
	} {
		if _, err := ParseSchedule(&tc.s); err == nil || err.Error() != tc.want {
			t.Errorf("ParseSchedule(%+v) = %v, want %q", tc.s, err, tc.want)
		}
		sp := spec()
		sp.Schedule = &tc.s
		if err := ValidateSpec(sp); err == nil || err.Error() != tc.want {
			t.Errorf("ValidateSpec = %v, want %q", err, tc.want)
		}
	}
}

// TestStoredScheduleThatNeverFiresFails: a Rollout stored with such a
// schedule (before the check existed, or past the REST API) is Failed at
// its first tick with nothing written, and one in progress holds.
func TestStoredScheduleThatNeverFiresFails(t *testing.T) {
	sp := spec()
	sp.Schedule = &v1alpha1.Schedule{Start: "0 0 30 2 *"}
	d := Next(v1alpha1.RolloutStatus{}, sp, Observation{Generation: 1, Preflight: &PreflightReport{}, Created: t0}, t0)
	if d.Status.Phase != v1alpha1.PhaseFailed || d.Status.CanaryWeight != 0 || !strings.Contains(d.Status.Message, `spec.schedule.start "0 0 30 2 *": never fires`) {
		t.Fatalf("start Feb 30: %s weight %d %q; want Failed naming the field", d.Status.Phase, d.Status.CanaryWeight, d.Status.Message)
	}
	sp.Schedule = &v1alpha1.Schedule{Windows: []v1alpha1.Window{{Start: "0 9 31 4 *", Duration: metav1.Duration{Duration: 8 * time.Hour}}}}
	d = Next(passed(at(1, t0.Add(-time.Minute)), 3), sp, withResult(live(25), analysis.Pass, "ok"), t0.Add(time.Minute))
	if d.Status.CurrentStep != 1 || !strings.Contains(d.Status.Message, "never fires") {
		t.Errorf("window Apr 31 in progress: step %d %q; want held at step 1, naming the window", d.Status.CurrentStep, d.Status.Message)
	}
}

// TestCalendarNeverTreatsNoActivationAsNow: a Calendar whose expressions
// have no activation (built here without ParseSchedule) neither starts at
// once nor is open.
func TestCalendarNeverTreatsNoActivationAsNow(t *testing.T) {
	feb30, err := cronParser.Parse("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	apr31, err := cronParser.Parse("0 9 31 4 *")
	if err != nil {
		t.Fatal(err)
	}
	c := &Calendar{loc: time.UTC, start: feb30, windows: []calWindow{{sched: apr31, dur: 8 * time.Hour, expr: "0 9 31 4 *"}}}
	if at := c.StartAt(t0); !t0.Add(100 * 365 * 24 * time.Hour).Before(at) {
		t.Errorf("StartAt = %s, want never (not now)", at)
	}
	for _, h := range []int{0, 9, 12} {
		now := time.Date(2026, 4, 30, h, 0, 0, 0, time.UTC)
		if open, why, next := c.Open(now); open || !next.IsZero() || !strings.Contains(why, "none opens again") {
			t.Errorf("Open(%s) = %v, %q, %s; want closed, none opens again", now, open, why, next)
		}
	}
	if end := c.WindowEnd(t0); !end.IsZero() {
		t.Errorf("WindowEnd = %s, want zero", end)
	}
}

// TestLeapDayScheduleFindsItsNextActivation: February 29th fires, though
// across 2100 eight years apart, beyond the cron library's five-year
// search; it is accepted and its next activation found.
func TestLeapDayScheduleFindsItsNextActivation(t *testing.T) {
	c, err := ParseSchedule(&v1alpha1.Schedule{Start: "0 12 29 2 *"})
	if err != nil {
		t.Fatalf("Feb 29: %v", err)
	}
	created := time.Date(2097, 3, 1, 0, 0, 0, 0, time.UTC)
	if got, want := c.StartAt(created), time.Date(2104, 2, 29, 12, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("StartAt(%s) = %s, want %s", created, got, want)
	}
}
