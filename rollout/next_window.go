package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// waitForSchedule keeps a pending rollout waiting for its scheduled start
// and for an open deployment window, showing when it may start.
func (d *decider) waitForSchedule() bool {
	if at := d.cal.StartAt(d.obs.Created); d.now.Before(at) {
		d.wait(at, "waiting for the scheduled start at "+at.Format(time.RFC3339))
		return true
	}
	if open, why, next := d.cal.Open(d.now); !open {
		d.wait(next, "waiting to start: "+why)
		return true
	}
	d.st.NextStartAt = nil
	return false
}

func (d *decider) wait(until time.Time, msg string) {
	d.st.Message = msg
	d.requeue = time.Minute
	if !until.IsZero() {
		d.st.NextStartAt = ptrTime(until)
		d.requeue = max(until.Sub(d.now), time.Second)
	}
}

// windowClosed holds (or rolls back) a progressing rollout outside its
// deployment windows or inside a freeze. It reports whether the rollout
// may not advance now.
func (d *decider) windowClosed() bool {
	if d.calErr != nil {
		d.st.Message = "holding: " + d.calErr.Error()
		return true
	}
	open, why, next := d.cal.Open(d.now)
	if open {
		if d.st.NextStartAt != nil {
			d.st.NextStartAt = nil
			d.st.Message = "the deployment window is open; continuing"
			d.setCondition(CondInWindow, metav1.ConditionTrue, "Open", "inside a deployment window")
		}
		return false
	}
	if d.cal.Rollback && !d.cal.Frozen(d.now) {
		d.rollback(RollbackWindow, "the deployment window closed ("+why+")")
		return true
	}
	if d.st.NextStartAt == nil {
		d.events = append(d.events, d.event(EventPaused, fmt.Sprintf("holding at %d%%: %s", d.st.CanaryWeight, why)))
	}
	d.st.Message = fmt.Sprintf("holding at %d%%: %s", d.st.CanaryWeight, why)
	if !next.IsZero() {
		d.st.NextStartAt = ptrTime(next)
	}
	d.setCondition(CondInWindow, metav1.ConditionFalse, "Closed", why)
	return true
}
