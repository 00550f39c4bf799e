package rollout

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

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
		sched, err := cronParser.Parse(s.Start)
		if err != nil {
			return nil, fmt.Errorf("spec.schedule.start %q: %v", s.Start, err)
		}
		c.start = sched
	}
	for i, w := range s.Windows {
		sched, err := cronParser.Parse(w.Start)
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

// StartAt is when a rollout created at created may start: the first time
// of the start schedule after it, or created itself without one.
func (c *Calendar) StartAt(created time.Time) time.Time {
	if c.start == nil {
		return created
	}
	return c.start.Next(created.In(c.loc))
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
		// A window that opened within the last dur is open now; the cron
		// library only looks forward, so look from now - dur.
		if first := w.sched.Next(now.Add(-w.dur)); !first.After(now) {
			return true, "", time.Time{}
		}
		if n := w.sched.Next(now); soonest.IsZero() || n.Before(soonest) {
			soonest = n
		}
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
		if first := w.sched.Next(now.In(c.loc).Add(-w.dur)); !first.After(now) {
			if e := first.Add(w.dur); e.After(end) {
				end = e
			}
		}
	}
	return end
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

// ValidateSpec checks what the CRD's schema cannot: that the schedule's
// cron expressions and time zone parse and that custom analysis queries
// render. The error names the field. The REST API refuses such a spec;
// the engine fails a Rollout with one before writing anything.
func ValidateSpec(spec v1alpha1.RolloutSpec) error {
	if _, err := ParseSchedule(spec.Schedule); err != nil {
		return err
	}
	if _, err := AnalysisConfig(spec); err != nil {
		return err
	}
	return nil
}
