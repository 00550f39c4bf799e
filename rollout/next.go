package rollout

import (
	"fmt"
	"math"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Request is an imperative request from a person: abort, promote or retry.
type Request struct {
	By     string
	Reason string
}

// Observation is what the engine saw on this tick, before deciding.
type Observation struct {
	// Generation is the Rollout's metadata.generation.
	Generation int64
	// Preflight is the preflight report. The engine runs it before the
	// start and again on every tick of a rollout in progress, so that a
	// mesh changed under a rollout (a VirtualService deleted, a subset
	// removed) pauses it instead of moving traffic to nowhere.
	Preflight *PreflightReport
	// LiveWeight is the canary weight read from the route, when LiveKnown.
	LiveWeight int32
	LiveKnown  bool
	// Result is this tick's analysis, or nil when none ran.
	Result *analysis.Result
	// Abort, Promote and Retry are pending requests, or nil.
	Abort   *Request
	Promote *Request
	Retry   *Request
	// PausedBy is who set spec.paused as it is, through serin; "" if no
	// one did at this generation.
	PausedBy string
	// Created is the Rollout's creation time, from which a scheduled
	// start is computed.
	Created time.Time
	// DataPlane is present when the engine follows the weights into the
	// proxies (see dataplane.go); status.dataPlane then says what they
	// carry.
	DataPlane *DataPlaneObservation
}

// Decision is what the engine should do. Next computes it from the status,
// the spec and an observation, without reading a clock or doing I/O.
type Decision struct {
	// Status is the status to record. Its CanaryWeight is the weight the
	// route must have; the engine writes it after recording the status.
	Status v1alpha1.RolloutStatus
	// Pause asks the engine to set spec.paused, for a pause serin decided
	// by itself (drift, inconclusive analysis), so that a person resumes it
	// the same way as a pause they asked for.
	Pause bool
	// Events happened in this decision.
	Events []Event
	// RequeueAfter is when the next tick is due; zero means no tick is due
	// (a terminal phase, or a pause waiting for a person).
	RequeueAfter time.Duration
	// Unannotate are the request annotations the decision consumed; the
	// engine removes them after recording the status (a retry).
	Unannotate []string
	// Rollback says why this decision rolls the canary back, or is empty
	// when it does not: the kind that code counts, beside the message
	// that people read.
	Rollback RollbackReason
}

// RollbackReason is the kind of cause of a rollback.
type RollbackReason string

// The kinds of rollback Next decides.
const (
	// RollbackAnalysis: the analysis failed the canary, progressing or
	// held.
	RollbackAnalysis RollbackReason = "analysis"
	// RollbackInconclusive: no data for longer than the inconclusive
	// limit, with onInconclusive: Rollback.
	RollbackInconclusive RollbackReason = "inconclusive"
	// RollbackWindow: the deployment window closed, with a schedule that
	// rolls back outside it.
	RollbackWindow RollbackReason = "window"
	// RollbackStableSLO: stable broke its own absolute limit, with
	// onStableViolation: Rollback.
	RollbackStableSLO RollbackReason = "stable-slo"
)

// RollbackReasons lists every RollbackReason, so that each can be counted
// from zero.
var RollbackReasons = []RollbackReason{RollbackAnalysis, RollbackInconclusive, RollbackWindow, RollbackStableSLO}

// Condition types recorded in status.conditions.
const (
	CondPreflight  = "Preflight"
	CondMTLSStrict = "MTLSStrict"
	// CondSidecarInjection is False when the namespace is not enabled for
	// sidecar injection (Istio's IST0102).
	CondSidecarInjection = "SidecarInjection"
	CondProgressing      = "Progressing"
	// CondSidecarResources is False when a delivered workload's template
	// leaves the istio-proxy sidecar's requests or limits unset.
	CondSidecarResources = "SidecarResources"
	CondInWindow         = "InWindow"
)

// Next decides the next status of a rollout. It is pure: everything it
// needs is in its arguments, and now is the time of the tick.
func Next(st v1alpha1.RolloutStatus, spec v1alpha1.RolloutSpec, obs Observation, now time.Time) Decision {
	spec = spec.Defaulted()
	d := &decider{spec: spec, obs: obs, now: now, old: st, st: *st.DeepCopy()}
	d.cal, d.calErr = ParseSchedule(spec.Schedule)
	if d.st.Phase == "" {
		d.st.Phase = v1alpha1.PhasePending
		d.st.CurrentStep = -1
	}
	d.decide()
	if d.st.Phase == v1alpha1.PhasePaused && (d.st.CanaryWeight > 0 || (obs.LiveKnown && obs.LiveWeight > 0)) {
		// A held canary still has traffic: it is analysed on every tick,
		// so that it is rolled back if it fails while paused.
		d.requeue = d.spec.Analysis.Interval.Duration
	}
	d.st.ObservedGeneration = obs.Generation
	d.st.Step = StepOf(d.st.CurrentStep, len(d.spec.Steps))
	d.st.Summary = SummaryOf(d.st)
	return d.decision()
}

type decider struct {
	cal        *Calendar
	calErr     error
	spec       v1alpha1.RolloutSpec
	obs        Observation
	now        time.Time
	old        v1alpha1.RolloutStatus
	st         v1alpha1.RolloutStatus
	pause      bool
	events     []Event
	requeue    time.Duration
	unannotate []string
	rolledBack RollbackReason
}

func (d *decider) decide() {
	switch {
	case d.obs.Retry != nil:
		d.retry()
	case d.st.Phase.Terminal():
		return
	case d.obs.Abort != nil:
		d.abort()
	case d.st.Phase == v1alpha1.PhasePending:
		d.pending()
	case d.heldRollback():
		// The canary has traffic and failed: rolled back, paused or not.
	case d.st.Phase == v1alpha1.PhasePaused && d.obs.Promote != nil:
		d.promote(d.obs.Promote)
	case d.meshBroken():
		d.meshPause()
	case d.dataPlaneHold():
		// The proxies do not carry the route's weight: held, weights
		// unchanged, until they do.
	case d.st.Phase == v1alpha1.PhasePaused:
		// Resume comes before drift: resuming accepts the live weight.
		d.paused()
	case d.obs.LiveKnown && d.drifted():
		d.driftPause()
	case d.obs.Promote != nil:
		d.promote(d.obs.Promote)
	case d.spec.Paused:
		d.enter(v1alpha1.PhasePaused, "PausedByUser", "paused by request; the weight is held until spec.paused is false")
		d.actedBy(d.obs.PausedBy)
	default:
		d.progressing()
	}
}

// heldRollback judges a result while the rollout is held (paused by a
// person or by serin, or on a weight someone else set): the canary still
// has traffic, so a failure still rolls it back. Other verdicts are only
// recorded; a person decides what happens next.
func (d *decider) heldRollback() bool {
	r := d.obs.Result
	held := d.st.Phase == v1alpha1.PhasePaused || d.spec.Paused || (d.obs.LiveKnown && d.drifted())
	if r == nil || !held {
		return false
	}
	d.record(*r)
	if r.Verdict != analysis.Fail {
		return false
	}
	d.fail(*r)
	return true
}

// meshBroken reports whether the re-checked mesh no longer supports the
// rollout.
func (d *decider) meshBroken() bool {
	return d.obs.Preflight != nil && !d.obs.Preflight.OK()
}

// meshPause holds the weight when the mesh changed under the rollout, and
// says what is wrong. Abort still works, and resuming waits until the mesh
// is whole again.
func (d *decider) meshPause() {
	why := "the mesh changed under the rollout: " + joinFindings(d.obs.Preflight.Failures)
	if d.st.Phase == v1alpha1.PhasePaused {
		d.st.Message = clip(why+"; paused until it is fixed", maxMessage)
		return
	}
	d.pause = true
	d.enter(v1alpha1.PhasePaused, "MeshChanged", why+"; paused with the weight held. Fix it and set spec.paused to false, or abort")
}

func (d *decider) abort() {
	by := ""
	if d.obs.Abort.By != "" {
		by = " by " + d.obs.Abort.By
	}
	msg := "aborted" + by
	if d.obs.Abort.Reason != "" {
		msg += ": " + d.obs.Abort.Reason
	}
	d.st.CanaryWeight = 0
	d.enter(v1alpha1.PhaseAborted, "Aborted", msg+"; traffic returned to stable (100/0)")
	d.actedBy(d.obs.Abort.By)
}

func (d *decider) pending() {
	if d.spec.Paused {
		d.st.Message = "paused before start; set spec.paused to false to start"
		return
	}
	if d.calErr != nil {
		d.enter(v1alpha1.PhaseFailed, "InvalidSchedule", d.calErr.Error()+"; nothing was written")
		return
	}
	if d.waitForSchedule() {
		return
	}
	pf := d.obs.Preflight
	if pf == nil {
		return // the engine runs the preflight before it asks again
	}
	d.preflightConditions(*pf)
	d.st.Target = &v1alpha1.ResolvedTarget{Route: pf.Resolved.Route, Host: pf.Resolved.Host,
		StableVersion: pf.StableVersion, CanaryVersion: pf.CanaryVersion}
	if !pf.OK() {
		d.enter(v1alpha1.PhaseFailed, "PreflightFailed", "preflight failed: "+joinFindings(pf.Failures)+"; nothing was written")
		return
	}
	if d.obs.Promote != nil {
		d.promote(d.obs.Promote)
		return
	}
	d.gotoStep(0, "Started", fmt.Sprintf("started: canary weight %d%%", d.spec.Steps[0]))
}

func (d *decider) preflightConditions(pf PreflightReport) {
	if pf.OK() {
		d.setCondition(CondPreflight, metav1.ConditionTrue, "Passed", "every preflight check passed")
	} else {
		d.setCondition(CondPreflight, metav1.ConditionFalse, "Failed", joinFindings(pf.Failures))
	}
	var mtls, injection []Finding
	for _, w := range pf.Warnings {
		switch w.Check {
		case "PeerAuthentication":
			mtls = append(mtls, w)
		case "Injection":
			injection = append(injection, w)
		}
	}
	if len(injection) > 0 {
		d.setCondition(CondSidecarInjection, metav1.ConditionFalse, "NotInjected", joinFindings(injection))
		d.events = append(d.events, d.event(EventWarning, "mesh warning: "+joinFindings(injection)))
	} else if pf.OK() {
		d.setCondition(CondSidecarInjection, metav1.ConditionTrue, "Injected", "the namespace is enabled for sidecar injection")
	}
	if len(mtls) > 0 {
		d.setCondition(CondMTLSStrict, metav1.ConditionFalse, "NotStrict", joinFindings(mtls))
		d.events = append(d.events, d.event(EventWarning, "mesh warning: "+joinFindings(mtls)))
	} else if pf.OK() {
		d.setCondition(CondMTLSStrict, metav1.ConditionTrue, "Strict", "a STRICT PeerAuthentication covers the namespace")
	}
}

// drifted reports whether someone else changed the weight: the live value
// is neither what serin decided nor what it last confirmed.
func (d *decider) drifted() bool {
	return d.obs.LiveWeight != d.st.CanaryWeight && d.obs.LiveWeight != d.st.AppliedWeight
}

func (d *decider) driftPause() {
	d.pause = true
	d.enter(v1alpha1.PhasePaused, "Drift", fmt.Sprintf(
		"the VirtualService was edited by someone else: canary weight is %d%% but serin set %d%%; "+
			"paused without overwriting it. Set spec.paused to false to resume at %d%%",
		d.obs.LiveWeight, d.st.CanaryWeight, d.st.CanaryWeight))
}

func (d *decider) promote(r *Request) {
	// A person asked for 100% over whatever the route holds now (a drift
	// pause included): the live weight is serin's to replace.
	if d.obs.LiveKnown {
		d.st.AppliedWeight = d.obs.LiveWeight
	}
	last := int32(len(d.spec.Steps) - 1)
	d.st.CurrentStep = last
	d.st.CanaryWeight = 100
	d.st.StepStartedAt = ptrTime(d.now)
	msg := "promoted to 100%"
	if r.By != "" {
		msg += " by " + r.By
	}
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	d.enter(v1alpha1.PhaseSucceeded, "Promoted", msg+d.nextRolloutHint())
	d.actedBy(r.By)
}

func (d *decider) paused() {
	if d.spec.Paused {
		d.requeue = 0
		return
	}
	// Resuming. After a drift pause the person has accepted the live
	// weight as a starting point; serin writes its own weight again.
	if d.obs.LiveKnown {
		d.st.AppliedWeight = d.obs.LiveWeight
	}
	d.resetDwell()
	d.enter(v1alpha1.PhaseProgressing, "Resumed", fmt.Sprintf("resumed at step %s (%d%%)", StepOf(d.st.CurrentStep, len(d.spec.Steps)), d.st.CanaryWeight))
	d.actedBy(d.obs.PausedBy)
	d.requeue = d.spec.Analysis.Interval.Duration
}

func (d *decider) progressing() {
	d.requeue = d.spec.Analysis.Interval.Duration
	if d.obs.Generation != d.st.ObservedGeneration && d.st.ObservedGeneration != 0 {
		d.replaceStep()
	}
	if r := d.obs.Result; r != nil {
		if d.judge(*r) {
			return
		}
	}
	if d.st.AppliedWeight != d.st.CanaryWeight {
		return // the weight is not on the route yet: its dwell has not begun
	}
	if d.st.WeightConfirmedAt == nil {
		// The weight was first seen on the route now: the dwell starts.
		d.st.WeightConfirmedAt = ptrTime(d.now)
		d.resetDwell()
		return
	}
	if d.obs.DataPlane != nil && dataPlanePending(d.st) {
		return // on the route, not yet in the proxies: the dwell waits
	}
	// Analysis goes on outside a window, so a bad canary is still caught;
	// only advancing waits.
	if d.windowClosed() {
		return
	}
	d.maybeAdvance()
}

// replaceStep keeps a progressing rollout consistent with a changed spec:
// it moves to the highest new step not above the current weight, so a
// spec change never raises canary traffic without a dwell.
func (d *decider) replaceStep() {
	idx := int32(0)
	for i, w := range d.spec.Steps {
		if w <= d.st.CanaryWeight {
			idx = int32(i)
		}
	}
	if idx == d.st.CurrentStep && d.spec.Steps[idx] == d.st.CanaryWeight {
		return
	}
	d.gotoStep(idx, "SpecChanged", fmt.Sprintf("spec changed: now at step %s (%d%%)", StepOf(idx, len(d.spec.Steps)), d.spec.Steps[idx]))
}

// judge records one analysis result and reports whether it ended the
// rollout or paused it. A failure rolls back at once: the sequential tests
// have already weighed the evidence, so no run of failed ticks is needed.
// An undecided result waits; only a lack of data, for longer than the
// inconclusive limit, ends the rollout.
func (d *decider) judge(r analysis.Result) bool {
	a := &d.st.Analysis
	d.record(r)
	if r.Verdict == analysis.Fail {
		d.fail(r)
		return true
	}
	if r.StableAboveSLO {
		return d.stableAboveSLO(r)
	}
	if r.Verdict == analysis.Pass {
		a.PassedTicks++
		a.InconclusiveSince = nil
		return false
	}
	if !r.NoData {
		// Data on both sides, the sample still growing: wait.
		a.InconclusiveSince = nil
		return false
	}
	if a.InconclusiveSince == nil {
		a.InconclusiveSince = ptrTime(d.now)
	}
	limit := d.spec.Analysis.InconclusiveLimit.Duration
	if d.now.Sub(a.InconclusiveSince.Time) < limit {
		return false
	}
	msg := fmt.Sprintf("analysis inconclusive with no data for %s: %s", limit, r.Reason)
	if d.spec.Analysis.OnInconclusive == v1alpha1.OnInconclusivePause {
		d.pause = true
		d.enter(v1alpha1.PhasePaused, "Inconclusive", msg+"; paused")
	} else {
		d.rollback(RollbackInconclusive, msg)
	}
	return true
}

// record keeps one analysis result in the status: the latest verdict,
// reason and checks, and a bounded history. The analysis began with the
// first result recorded.
func (d *decider) record(r analysis.Result) {
	a := &d.st.Analysis
	if a.Since == nil {
		a.Since = ptrTime(AnalysisStart(d.st, d.now))
	}
	a.LastVerdict = string(r.Verdict)
	a.LastReason = clip(r.Reason, maxMessage)
	a.LastTickAt = ptrTime(d.now)
	a.Checks = checkStatuses(r.Checks)
	a.StableAboveSLO = r.StableAboveSLO
	a.History = append(a.History, v1alpha1.AnalysisTick{Time: metav1.NewTime(d.now), Verdict: string(r.Verdict), Reason: clip(r.Reason, 300)})
	if n := len(a.History); n > v1alpha1.MaxAnalysisHistory {
		a.History = append([]v1alpha1.AnalysisTick(nil), a.History[n-v1alpha1.MaxAnalysisHistory:]...)
	}
}

// fail rolls a failed canary back. The sequential tests have already
// weighed the evidence, so no run of failed ticks is needed.
func (d *decider) fail(r analysis.Result) {
	d.st.Analysis.FirstFailureAt = ptrTime(d.detectedAt(r))
	d.rollback(RollbackAnalysis, "rolled back: "+r.Reason)
}

// detectedAt is when the earliest failing check's evidence reached its
// threshold, or now when none says.
func (d *decider) detectedAt(r analysis.Result) time.Time {
	at := d.now
	for _, c := range r.Checks {
		if c.Verdict != analysis.Fail || c.DryRun || c.EvidenceAtSeconds <= 0 {
			continue
		}
		t := d.st.Analysis.Since.Add(time.Duration(c.EvidenceAtSeconds * float64(time.Second)))
		if t.Before(at) {
			at = t
		}
	}
	return at
}

// stableAboveSLO applies the rollout's policy when stable itself breaks an
// absolute limit: the canary is not to blame, and is never reported as
// failed for it.
func (d *decider) stableAboveSLO(r analysis.Result) bool {
	a := &d.st.Analysis
	a.PassedTicks = 0
	a.InconclusiveSince = nil
	why := "stable is above its SLO, so the canary cannot be judged against it: " + stableReasons(r)
	switch d.spec.Analysis.OnStableViolation {
	case v1alpha1.OnStableViolationRollback:
		d.rollback(RollbackStableSLO, why)
		return true
	case v1alpha1.OnStableViolationPause:
		d.pause = true
		d.enter(v1alpha1.PhasePaused, "StableAboveSLO", why+"; paused")
		return true
	}
	d.st.Message = clip(fmt.Sprintf("holding at %d%%: %s", d.st.CanaryWeight, why), maxMessage)
	return false
}

// stableReasons joins the reasons of the checks that found stable above
// its limit.
func stableReasons(r analysis.Result) string {
	var parts []string
	for _, c := range r.Checks {
		if c.StableAboveLimit && !c.DryRun {
			parts = append(parts, c.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

func (d *decider) rollback(why RollbackReason, msg string) {
	d.rolledBack = why
	d.st.CanaryWeight = 0
	d.enter(v1alpha1.PhaseRolledBack, "RolledBack", clip(msg, maxMessage-40)+"; traffic returned to stable (100/0)")
}

// maybeAdvance moves to the next step once the current one has dwelt a
// whole stepInterval with at least one passing tick, the latest tick
// passing and no failure since the step began.
func (d *decider) maybeAdvance() {
	a := d.st.Analysis
	start := d.dwellStart()
	due := start.Add(d.spec.StepInterval.Duration)
	if d.now.Before(due) {
		if left := due.Sub(d.now); left < d.requeue {
			d.requeue = left
		}
		return
	}
	if a.PassedTicks < 1 || a.LastVerdict != string(analysis.Pass) {
		return
	}
	next := d.st.CurrentStep + 1
	if int(next) >= len(d.spec.Steps) {
		next = int32(len(d.spec.Steps) - 1)
	}
	w := d.spec.Steps[next]
	if w == 100 {
		d.st.CurrentStep = next
		d.st.CanaryWeight = 100
		d.st.StepStartedAt = ptrTime(d.now)
		d.enter(v1alpha1.PhaseSucceeded, "Succeeded",
			"promoted to 100% after every step passed"+d.nextRolloutHint())
		return
	}
	d.gotoStep(next, "StepAdvanced", fmt.Sprintf("advanced to step %s: canary weight %d%%", StepOf(next, len(d.spec.Steps)), w))
}

func (d *decider) dwellStart() time.Time {
	start := d.now
	if d.st.StepStartedAt != nil {
		start = d.st.StepStartedAt.Time
	}
	return dwellStart(d.st, start, d.obs.DataPlane != nil)
}

func (d *decider) gotoStep(i int32, reason, msg string) {
	d.st.CurrentStep = i
	d.st.CanaryWeight = d.spec.Steps[i]
	d.st.StepStartedAt = ptrTime(d.now)
	d.st.WeightConfirmedAt = nil
	d.resetDwell()
	kind := EventStepAdvanced
	if reason == "Started" {
		kind = EventStarted
	}
	d.transition(v1alpha1.PhaseProgressing, reason, msg, kind)
	d.setCondition(CondProgressing, metav1.ConditionTrue, reason, msg)
	d.requeue = d.spec.Analysis.Interval.Duration
}

func (d *decider) resetDwell() {
	d.st.Analysis.PassedTicks = 0
	d.st.Analysis.CleanSince = ptrTime(d.now)
	d.st.Analysis.InconclusiveSince = nil
}

// enter moves to a phase other than Progressing-at-a-new-step.
func (d *decider) enter(p v1alpha1.Phase, reason, msg string) {
	kinds := map[v1alpha1.Phase]EventKind{
		v1alpha1.PhasePaused: EventPaused, v1alpha1.PhaseProgressing: EventResumed,
		v1alpha1.PhaseSucceeded: EventSucceeded, v1alpha1.PhaseRolledBack: EventRolledBack,
		v1alpha1.PhaseAborted: EventAborted, v1alpha1.PhaseFailed: EventFailed,
	}
	d.transition(p, reason, msg, kinds[p])
	status := metav1.ConditionTrue
	if p != v1alpha1.PhaseProgressing {
		status = metav1.ConditionFalse
	}
	d.setCondition(CondProgressing, status, reason, msg)
	if p.Terminal() {
		d.requeue = 0
	}
}

func (d *decider) transition(p v1alpha1.Phase, reason, msg string, kind EventKind) {
	msg = clip(msg, maxMessage)
	from := d.stepLabel(d.old)
	d.st.Phase = p
	d.st.Message = msg
	d.st.History = append(d.st.History, v1alpha1.Transition{
		Time: metav1.NewTime(d.now), From: from, To: d.stepLabel(d.st), Reason: reason, Message: msg,
	})
	if n := len(d.st.History); n > v1alpha1.MaxHistory {
		d.st.History = append([]v1alpha1.Transition(nil), d.st.History[n-v1alpha1.MaxHistory:]...)
	}
	d.events = append(d.events, d.event(kind, msg))
}

// actedBy names the person behind the transition just recorded, in its
// history entry and in its event, for a request that says who made it.
func (d *decider) actedBy(by string) {
	if by == "" {
		return
	}
	if n := len(d.st.History); n > 0 {
		d.st.History[n-1].By = clip(by, 256)
	}
	if n := len(d.events); n > 0 {
		d.events[n-1].By = by
	}
}

func (d *decider) event(kind EventKind, msg string) Event {
	return Event{Kind: kind, Time: d.now, Weight: d.st.CanaryWeight, Step: d.st.CurrentStep, Steps: len(d.spec.Steps), Message: msg}
}

func (d *decider) setCondition(t string, s metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&d.st.Conditions, metav1.Condition{
		Type: t, Status: s, Reason: reason, Message: clip(msg, maxMessage),
		ObservedGeneration: d.obs.Generation, LastTransitionTime: metav1.NewTime(d.now),
	})
}

func (d *decider) decision() Decision {
	return Decision{Status: d.st, Pause: d.pause, Events: d.events, RequeueAfter: d.requeue, Unannotate: d.unannotate, Rollback: d.rolledBack}
}

// nextRolloutHint says what a success leaves to do: the rotation of the
// subsets by hand, or, for a delivered workload, nothing, as serin
// promotes the new revision to the stable copy itself.
func (d *decider) nextRolloutHint() string {
	if d.spec.Workload != nil {
		return "; the stable copy takes the new revision next, then the route returns to it"
	}
	return "; make the canary subset the stable one for the next rollout"
}

// StepOf names step index i of n steps as every surface shows it,
// counting from one: "2/4". Before the first step it is "0/4".
func StepOf(i int32, n int) string {
	return fmt.Sprintf("%d/%d", max(i+1, 0), n)
}

// stepLabel names a status for history entries, e.g. "Progressing 2/4 (25%)".
func (d *decider) stepLabel(st v1alpha1.RolloutStatus) string {
	p := st.Phase
	if p == "" {
		p = v1alpha1.PhasePending
	}
	if st.CurrentStep < 0 {
		return string(p)
	}
	return fmt.Sprintf("%s %s (%d%%)", p, StepOf(st.CurrentStep, len(d.spec.Steps)), st.CanaryWeight)
}

// checkStatuses records the checks that matter for the status: every
// check that did not skip, then as many skipped ones as fit.
func checkStatuses(crs []analysis.CheckResult) []v1alpha1.CheckStatus {
	out := make([]v1alpha1.CheckStatus, 0, len(crs))
	for _, c := range crs {
		out = append(out, v1alpha1.CheckStatus{
			Check: c.Check, Kind: string(c.Kind), Hop: c.Hop, Source: c.Source, Verdict: string(c.Verdict),
			Canary: finite(c.Canary), CanaryLow: finite(c.CanaryLow), CanaryHigh: finite(c.CanaryHigh),
			Stable: finite(c.Stable), StableLow: finite(c.StableLow), StableHigh: finite(c.StableHigh),
			Limit: finite(c.Limit), Unit: c.Unit,
			CanaryRequests: finite(c.CanaryRequests), StableRequests: finite(c.StableRequests),
			Evidence: finite(c.Evidence), Threshold: finite(c.Threshold), EvidenceAtSeconds: finite(c.EvidenceAtSeconds),
			StableAboveLimit: c.StableAboveLimit, NoData: c.NoData, Since: optTime(c.Since),
			Reason: clip(c.Reason, 300), DryRun: c.DryRun, TraceID: c.TraceID,
		})
		if len(out) == 100 {
			break
		}
	}
	return out
}

// CheckResultOf is the inverse of checkStatuses for one check: what a
// notification and the API's view render, with the intervals, the window
// and the evidence.
func CheckResultOf(c v1alpha1.CheckStatus) analysis.CheckResult {
	return analysis.CheckResult{Check: c.Check, Kind: analysis.Kind(c.Kind), Hop: c.Hop, Source: c.Source,
		Verdict: analysis.Verdict(c.Verdict), Canary: c.Canary, CanaryLow: c.CanaryLow, CanaryHigh: c.CanaryHigh,
		Stable: c.Stable, StableLow: c.StableLow, StableHigh: c.StableHigh, Limit: c.Limit, Unit: c.Unit,
		CanaryRequests: c.CanaryRequests, StableRequests: c.StableRequests,
		Evidence: c.Evidence, Threshold: c.Threshold, EvidenceAtSeconds: c.EvidenceAtSeconds,
		StableAboveLimit: c.StableAboveLimit, NoData: c.NoData, Since: timeOf(c.Since),
		Reason: c.Reason, DryRun: c.DryRun, TraceID: c.TraceID}
}

// optTime is t for the status, nil when it is zero.
func optTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return ptrTime(t)
}

// timeOf is the time of a status timestamp, zero when it is unset.
func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// finite keeps NaN and infinities, which JSON cannot carry, out of the status.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	if math.Abs(v) >= 1e9 {
		return v
	}
	return math.Round(v*1000) / 1000
}

// maxMessage bounds every message serin stores in a status, so that a
// long list of failing checks can never make the status too large for the
// API server.
const maxMessage = 2000

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func joinFindings(fs []Finding) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Message
	}
	return strings.Join(parts, "; ")
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
