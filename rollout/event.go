package rollout

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
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

// MaxEventNote is the longest note a Kubernetes Event takes, in bytes
// (events.k8s.io/v1 refuses a longer one).
const MaxEventNote = 1024

// Note is the event's text for a Kubernetes Event. A rollback with failed
// checks says each failure once, one a line, from the checks' fields
// (analysis.CheckResult.Summary), instead of the engine's joined message;
// any other event is its message. It fits MaxEventNote: the failures that
// do not fit are counted.
func (e Event) Note() string {
	if e.Kind != EventRolledBack || len(e.Checks) == 0 {
		return clipBytes(e.Message, MaxEventNote)
	}
	head := fmt.Sprintf("rolled back at step %s (%d%%); traffic returned to stable (100/0). Failed:", StepOf(e.Step, e.Steps), e.Weight)
	if e.Steps == 0 {
		head = fmt.Sprintf("rolled back at %d%%; traffic returned to stable (100/0). Failed:", e.Weight)
	}
	var b strings.Builder
	b.WriteString(head)
	for i, c := range e.Checks {
		line := "\n" + c.Summary(e.Time)
		more := ""
		if rest := len(e.Checks) - i - 1; rest > 0 {
			more = fmt.Sprintf("\n… and %d more", rest)
		}
		switch {
		case b.Len()+len(line)+len(more) <= MaxEventNote:
			b.WriteString(line)
		case i == 0:
			// One failure, clipped, is better than none.
			b.WriteString(clipBytes(line, MaxEventNote-b.Len()-len(more)))
		default:
			b.WriteString(fmt.Sprintf("\n… and %d more", len(e.Checks)-i))
			return clipBytes(b.String(), MaxEventNote)
		}
	}
	return b.String()
}

// clipBytes shortens s to at most n bytes, on a rune boundary, marking the
// cut with an ellipsis.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := max(n-len(ell), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// failedChecks are the acting checks of a status that failed: the ones
// behind a rollback.
func failedChecks(st v1alpha1.RolloutStatus) []analysis.CheckResult {
	var out []analysis.CheckResult
	for _, c := range st.Analysis.Checks {
		if c.Verdict == string(analysis.Fail) && !c.DryRun {
			out = append(out, CheckResultOf(c))
		}
	}
	return out
}
