package rollout

import (
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// cronParser accepts the standard five fields and the @descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Calendar answers when a rollout may start and advance: its scheduled
// start, its deployment windows and its freeze periods. It is pure: every
// answer depends only on the time passed in.
type Calendar struct {
	loc     *time.Location
	start   cron.Schedule
	windows []calWindow
	freeze  []v1alpha1.FreezePeriod
	// Rollback is true when a closing window rolls a progressing rollout
	// back instead of holding it.
	Rollback bool
}

type calWindow struct {
	sched cron.Schedule
	dur   time.Duration
	expr  string
}

// ParseSchedule checks a schedule and builds its Calendar. A nil schedule
// is a Calendar that is always open. Errors name the field, e.g.
// "spec.schedule.windows[1].start".
func ParseSchedule(s *v1alpha1.Schedule) (*Calendar, error) {
	c := &Calendar{loc: time.UTC}
	if s == nil {
		return c, nil
	}
	if s.TimeZone != "" {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("spec.schedule.timeZone %q: unknown time zone", s.TimeZone)
		}
		c.loc = loc
	}
	if s.Start != "" {
		sched, err := parseCron(s.Start, c.loc)
		if err != nil {
			return nil, fmt.Errorf("spec.schedule.start %q: %v", s.Start, err)
		}
		c.start = sched
	}
	for i, w := range s.Windows {
		sched, err := parseCron(w.Start, c.loc)
		if err != nil {
			return nil, fmt.Errorf("spec.schedule.windows[%d].start %q: %v", i, w.Start, err)
		}
		if w.Duration.Duration < time.Minute {
			return nil, fmt.Errorf("spec.schedule.windows[%d].duration %v: must be at least 1m", i, w.Duration.Duration)
		}
		c.windows = append(c.windows, calWindow{sched: sched, dur: w.Duration.Duration, expr: w.Start})
	}
	for i, f := range s.Freeze {
		if !f.To.After(f.From.Time) {
			return nil, fmt.Errorf("spec.schedule.freeze[%d]: to %s is not after from %s", i, f.To.UTC().Format(time.RFC3339), f.From.UTC().Format(time.RFC3339))
		}
	}
	c.freeze = s.Freeze
	c.Rollback = s.OutsideWindow == v1alpha1.OutsideWindowRollback
	return c, nil
}

// errNeverFires is the error of a cron expression with no activation,
// such as "0 0 30 2 *" (February 30th).
var errNeverFires = errors.New("never fires")

// searchHorizons is how many of the cron library's five-year searches nextFire
// chains: the longest gap between two activations of an expression that
// fires at all is eight years (February 29th across 2100), so three
// searches find every activation there is.
const searchHorizons = 3

// never is the start of a schedule that has no next activation, so that a
// time compared with it is always before it.
var never = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// parseCron parses a cron expression and refuses one that never fires:
// the cron library answers the zero time for those, which every caller
// would otherwise read as "now". The check looks from a fixed time, so
// ParseSchedule stays pure, and chains searches, so an expression that
// fires every few years (February 29th) passes.
func parseCron(expr string, loc *time.Location) (cron.Schedule, error) {
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return nil, err
	}
	if nextFire(sched, time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
		return nil, errNeverFires
	}
	return sched, nil
}

// nextFire is the first activation of s after t, or the zero time when there
// is none in searchHorizons of the cron library's searches.
func nextFire(s cron.Schedule, t time.Time) time.Time {
	for range searchHorizons {
		n := s.Next(t)
		if !n.IsZero() {
			return n
		}
		t = t.AddDate(5, 0, 0)
	}
	return time.Time{}
}

// StartAt is when a rollout created at created may start: the first time
// of the start schedule after it, or created itself without one. A
// schedule with no next activation starts never, not at once.
func (c *Calendar) StartAt(created time.Time) time.Time {
	if c.start == nil {
		return created
	}
	if n := nextFire(c.start, created.In(c.loc)); !n.IsZero() {
		return n
	}
	return never
}

// Open reports whether now is inside a deployment window and outside every
// freeze. When it is not, why says so in plain words and next is the
// earliest time it may open (zero when unknown).
func (c *Calendar) Open(now time.Time) (open bool, why string, next time.Time) {
	now = now.In(c.loc)
	if f, ok := c.frozen(now); ok {
		why = fmt.Sprintf("frozen until %s", f.To.In(c.loc).Format(time.RFC3339))
		if f.Reason != "" {
			why += " (" + f.Reason + ")"
		}
		// The window may be closed when the freeze ends; look from there.
		if o, _, n := c.Open(f.To.Time); !o {
			return false, why, n
		}
		return false, why, f.To.Time
	}
	if len(c.windows) == 0 {
		return true, "", time.Time{}
	}
	var soonest time.Time
	for _, w := range c.windows {
		if w.openAt(now) {
			return true, "", time.Time{}
		}
		// A window with no next activation (zero) never opens again.
		if n := nextFire(w.sched, now); !n.IsZero() && (soonest.IsZero() || n.Before(soonest)) {
			soonest = n
		}
	}
	if soonest.IsZero() {
		return false, "outside the deployment windows; none opens again", time.Time{}
	}
	why = "outside the deployment windows; the next opens at " + soonest.Format(time.RFC3339)
	if f, ok := c.frozen(soonest); ok {
		return false, why, f.To.Time
	}
	return false, why, soonest
}

// WindowEnd is when the window open at now closes (zero when there are no
// windows or none is open).
func (c *Calendar) WindowEnd(now time.Time) time.Time {
	var end time.Time
	for _, w := range c.windows {
		if first, ok := w.opened(now.In(c.loc)); ok {
			if e := first.Add(w.dur); e.After(end) {
				end = e
			}
		}
	}
	return end
}

// opened returns when w opened last, if it is open at now. A window that
// opened within the last dur is open now; the cron library only looks
// forward, so look from now - dur. The zero time (no activation) is never
// open.
func (w calWindow) opened(now time.Time) (time.Time, bool) {
	first := nextFire(w.sched, now.Add(-w.dur))
	return first, !first.IsZero() && !first.After(now)
}

func (w calWindow) openAt(now time.Time) bool {
	_, ok := w.opened(now)
	return ok
}

// Frozen reports whether now is inside a freeze period.
func (c *Calendar) Frozen(now time.Time) bool {
	_, ok := c.frozen(now)
	return ok
}

func (c *Calendar) frozen(now time.Time) (v1alpha1.FreezePeriod, bool) {
	for _, f := range c.freeze {
		if !now.Before(f.From.Time) && now.Before(f.To.Time) {
			return f, true
		}
	}
	return v1alpha1.FreezePeriod{}, false
}

// ValidateSpec is ValidateSpecIn for a spec whose namespace is not known:
// it refuses everything that no namespace's tenancy scope could allow.
func ValidateSpec(spec v1alpha1.RolloutSpec) error {
	return ValidateSpecIn(spec, analysis.Scope{})
}

// ValidateSpecIn checks what the CRD's schema cannot: that the schedule's
// cron expressions and time zone parse and fire, that custom analysis
// queries render and parse, and that they and the match override select
// only series in scope, the namespaces the rollout may read
// (analysis.Tenancy.Scope of its namespace). The error names the field.
// The REST API refuses such a spec; the engine fails a Rollout with one
// before writing anything.
func ValidateSpecIn(spec v1alpha1.RolloutSpec, scope analysis.Scope) error {
	if _, err := ParseSchedule(spec.Schedule); err != nil {
		return err
	}
	if _, err := AnalysisConfigIn(spec, scope); err != nil {
		return err
	}
	return nil
}
