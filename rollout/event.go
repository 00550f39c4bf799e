package rollout

import (
	"time"

	"github.com/serin-dev/serin/analysis"
)

// EventKind names what happened to a rollout.
type EventKind string

// The events a rollout emits, to Kubernetes and to the Notifier.
const (
	EventStarted      EventKind = "Started"
	EventStepAdvanced EventKind = "StepAdvanced"
	EventPaused       EventKind = "Paused"
	EventResumed      EventKind = "Resumed"
	EventSucceeded    EventKind = "Succeeded"
	EventRolledBack   EventKind = "RolledBack"
	EventAborted      EventKind = "Aborted"
	EventFailed       EventKind = "Failed"
	// EventRetried is a RolledBack or Aborted rollout started again.
	EventRetried EventKind = "Retried"
	EventWarning EventKind = "Warning"
	// EventAdopted is a workload taken over: its stable copy serves.
	EventAdopted EventKind = "Adopted"
	// EventReleaseStarted is a new revision of a workload's template
	// starting as the canary.
	EventReleaseStarted EventKind = "ReleaseStarted"
	// EventStableUpdated is a released revision made the new stable.
	EventStableUpdated EventKind = "StableUpdated"
)

// Event is one thing that happened to a rollout, with enough context for a
// person to understand it.
type Event struct {
	Kind      EventKind
	Namespace string
	Name      string
	Time      time.Time
	// Weight is the canary weight when it happened.
	Weight int32
	// Step is the index of the step, and Steps how many the rollout has;
	// StepOf(Step, Steps) shows it ("2/4").
	Step  int32
	Steps int
	// Message explains it in plain words.
	Message string
	// By names who asked for it, for promote, abort, retry and a release
	// made through serin.
	By string
	// Channels are the notification channels the Rollout names; empty
	// means every channel that wants this kind of event.
	Channels []string
	// Runbook is the URL the Rollout names for what to do when it fails
	// (spec.notifications.runbook), or empty.
	Runbook string
	// Checks are the failed checks behind a rollback, with canary, stable,
	// limit, hop and an example trace.
	Checks []analysis.CheckResult
	// LastPassAt is the last passing tick before the failure, DetectedAt the
	// first failed tick, and CompletedAt when the route was confirmed back
	// at 100/0: detection took at most DetectedAt-LastPassAt, the rollback
	// CompletedAt-DetectedAt. Zero when unknown.
	LastPassAt  time.Time
	DetectedAt  time.Time
	CompletedAt time.Time
	// DataPlane is what the proxies carried of a rollback, when the
	// controller reads istiod; nil otherwise.
	DataPlane *DataPlaneNote
}

// Warning reports whether the event should be a Kubernetes Warning event.
func (e Event) Warning() bool {
	switch e.Kind {
	case EventRolledBack, EventAborted, EventFailed, EventWarning, EventPaused:
		return true
	}
	return false
}
