package rollout

import (
	"fmt"
	"math"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Transition reasons of a delivered workload.
const (
	ReasonAdopted          = "Adopted"
	ReasonReleaseStarted   = "ReleaseStarted"
	ReasonCanaryNotReady   = "ProgressDeadlineExceeded"
	ReasonTemplateRefused  = "TemplateRefused"
	ReasonSuperseded       = "Superseded"
	ReasonStableUpdated    = "StableUpdated"
	ReasonReleaseFinished  = "ReleaseFinished"
	OutcomeSuperseded      = "Superseded"
	releaseWaitForWorkload = time.Second
)

// ActionKind is what a WorkloadAction does.
type ActionKind string

// The actions on a delivered workload.
const (
	ActionSetTrack      ActionKind = "SetTrack"
	ActionScaleWorkload ActionKind = "ScaleWorkload"
	ActionAdoptRoute    ActionKind = "AdoptRoute"
	// ActionSelectCanary points the canary subset at Track's pods.
	ActionSelectCanary ActionKind = "SelectCanary"
)

// WorkloadAction is one idempotent step on a workload or its route.
type WorkloadAction struct {
	Kind     ActionKind
	Track    Track
	Revision string
	Replicas int32
}

// ReleaseObservation is what the engine saw of a delivered workload.
type ReleaseObservation struct {
	Generation int64
	Workload   Workload
	State      WorkloadState
	// Retry is a pending retry request: in workload mode it runs the last
	// release again, even though its template has not changed.
	Retry *Request
}

// ReleaseDecision is what the engine does for a delivered workload on one
// tick, before Next.
type ReleaseDecision struct {
	// Actions are carried out in order, before the status is recorded.
	// Each is idempotent, so a crash in between repeats them harmlessly.
	Actions []WorkloadAction
	// Status is the status to record.
	Status v1alpha1.RolloutStatus
	Events []Event
	// Proceed says Next decides this tick too: a release is in progress
	// with its canary ready (or already receiving traffic).
	Proceed bool
	// RequeueAfter is when to look again when Proceed is false; zero
	// means when something changes.
	RequeueAfter time.Duration
	// Unannotate are the requests the decision consumed.
	Unannotate []string
}

// NextRelease decides the workload side of a delivered rollout: adoption,
// the start of a release when the template changes, the canary's
// readiness, a release superseded by a newer template, and what a
// release's end does to the copies. It is pure, like Next.
func NextRelease(st v1alpha1.RolloutStatus, spec v1alpha1.RolloutSpec, obs ReleaseObservation, now time.Time) ReleaseDecision {
	spec = spec.Defaulted()
	r := &releaser{decider: decider{spec: spec, obs: Observation{Generation: obs.Generation}, now: now, old: st, st: *st.DeepCopy()},
		w: obs.Workload, ws: obs.State, retry: obs.Retry}
	if r.st.Phase == "" {
		r.st.Phase, r.st.CurrentStep = v1alpha1.PhasePending, -1
	}
	if r.st.Workload == nil {
		r.st.Workload = &v1alpha1.WorkloadStatus{}
	}
	r.wst = r.st.Workload
	r.decide()
	if w := r.st.Workload; w.Release != "" && !w.Done && r.st.Phase.Terminal() && r.requeue == 0 {
		r.requeue = releaseWaitForWorkload // the end is carried out on the next ticks
	}
	r.st.ObservedGeneration = obs.Generation
	r.st.Step = StepOf(r.st.CurrentStep, len(r.spec.Steps))
	return ReleaseDecision{Actions: r.actions, Status: r.st, Events: r.events, Proceed: r.proceed,
		RequeueAfter: r.requeue, Unannotate: r.unannotate}
}

type releaser struct {
	decider
	w       Workload
	ws      WorkloadState
	wst     *v1alpha1.WorkloadStatus
	retry   *Request
	actions []WorkloadAction
	proceed bool
}

func (r *releaser) decide() {
	if r.wst.AdoptedAt == nil {
		r.adopt()
		return
	}
	r.followReplicas()
	running := r.wst.Release != "" && !r.wst.Done
	switch {
	case !running:
		r.idle()
	case r.ws.Revision != r.wst.Release && !r.st.Phase.Terminal():
		r.supersede()
	case r.st.Phase == v1alpha1.PhasePending:
		r.bringUpCanary()
	case r.st.Phase.Terminal():
		r.finish()
	default:
		r.proceed = true // Progressing or Paused: Next and the analysis go on
		if n := r.canaryReplicas(); r.ws.Autoscaler != "" && !r.ws.Canary.Runs(r.wst.Release, n) {
			r.act(ActionSetTrack, TrackCanary, r.wst.Release, n)
		}
	}
}

// replicas is the size of each track: the workload's own count as last
// taken from it, and at least one.
func (r *releaser) replicas() int32 { return max(r.wst.Replicas, 1) }

// stableReplicas is the stable copy's size: the autoscaler's once it has
// one, else replicas.
func (r *releaser) stableReplicas() int32 {
	if r.ws.Autoscaler != "" && r.ws.Stable.Exists && r.ws.Stable.Replicas > 0 {
		return r.ws.Stable.Replicas
	}
	return r.replicas()
}

// canaryReplicas is the canary copy's size. Without an autoscaler it is
// the stable's. With one, it follows the traffic: the share of the
// stable's pods that the next weight needs (the first step's while the
// canary comes up), and at least one, so that its pods are there before
// the step sends them traffic.
func (r *releaser) canaryReplicas() int32 {
	if r.ws.Autoscaler == "" {
		return r.replicas()
	}
	w := r.spec.Steps[0]
	if i := r.st.CurrentStep; i >= 0 {
		w = r.spec.Steps[min(int(i)+1, len(r.spec.Steps)-1)]
	}
	return max(1, int32(math.Ceil(float64(r.stableReplicas())*float64(w)/100)))
}

// adopt brings the stable copy up with the workload's template and, once
// it is ready, puts the route on it. The workload itself is scaled down
// only on a later tick (followReplicas), after the route has moved: no
// request goes to a pod that is not ready.
func (r *releaser) adopt() {
	if r.wst.Replicas == 0 {
		r.wst.Replicas = max(r.ws.Replicas, 1)
	}
	if r.wst.ReleaseStartedAt == nil {
		r.wst.ReleaseStartedAt = &metav1.Time{Time: r.now}
	}
	n := r.replicas()
	stable := r.ws.Stable
	if refused := r.checkTemplate(); refused != "" {
		r.failOnce(ReasonTemplateRefused, fmt.Sprintf("cannot adopt %s: %s; nothing was written", r.w, refused))
		return
	}
	if !stable.Runs(r.ws.Revision, n) {
		r.act(ActionSetTrack, TrackStable, r.ws.Revision, n)
	}
	if !stable.At(r.ws.Revision, n) {
		if r.deadlinePassed() {
			r.failOnce(ReasonCanaryNotReady, fmt.Sprintf(
				"cannot adopt %s: %s was not ready within progressDeadline %s (%d/%d ready%s); nothing was routed to it",
				r.w, r.w.StableCopy(), r.spec.ProgressDeadline.Duration, stable.Ready, n, stuck(stable)))
			return
		}
		r.st.Message = fmt.Sprintf("adopting %s: waiting for %s (revision %s) to be ready: %d/%d", r.w, r.w.StableCopy(), r.ws.Revision, stable.Ready, n)
		r.requeue = releaseWaitForWorkload
		return
	}
	r.act(ActionAdoptRoute, "", "", 0)
	r.wst.AdoptedAt = &metav1.Time{Time: r.now}
	r.wst.StableRevision = r.ws.Revision
	r.wst.ReleaseStartedAt = nil
	r.st.Phase, r.st.CurrentStep, r.st.CanaryWeight, r.st.AppliedWeight = v1alpha1.PhasePending, -1, 0, 0
	r.transition(v1alpha1.PhasePending, ReasonAdopted, fmt.Sprintf(
		"adopted %s: %s serves revision %s (%s) with %d replicas, and the route sends it 100%%; the next change of the template is a release",
		r.w, r.w.StableCopy(), r.ws.Revision, ImagesString(r.ws.Images), n), EventAdopted)
	r.requeue = releaseWaitForWorkload
}

// failOnce fails an adoption; a failure already recorded is not recorded
// again on every tick while the template stays as it is.
func (r *releaser) failOnce(reason, msg string) {
	if r.st.Phase == v1alpha1.PhaseFailed && r.st.Message == clip(msg, maxMessage) {
		return
	}
	r.enter(v1alpha1.PhaseFailed, reason, msg)
}

// followReplicas takes the workload's own replica count whenever it is
// not zero (a person or a GitOps tool set it), gives it to the stable
// copy, and scales the workload back to zero.
func (r *releaser) followReplicas() {
	if r.ws.Replicas == 0 {
		return
	}
	r.wst.Replicas = r.ws.Replicas
	n := r.replicas()
	if r.ws.Autoscaler != "" {
		n = r.stableReplicas() // the autoscaler sizes the stable copy
	}
	if r.ws.Stable.Revision != "" && !r.ws.Stable.Runs(r.ws.Stable.Revision, n) {
		r.act(ActionSetTrack, TrackStable, r.ws.Stable.Revision, n)
	}
	if !r.ws.Stable.At(r.ws.Stable.Revision, n) {
		r.requeue = releaseWaitForWorkload
		return // the workload's pods serve until the stable copy can
	}
	r.act(ActionScaleWorkload, "", "", 0)
}

// idle waits for a new template, and starts its release when it comes.
func (r *releaser) idle() {
	rev := r.ws.Revision
	again := r.retry != nil && rev == r.wst.Release && rev != r.wst.StableRevision
	if r.retry != nil {
		r.unannotate = append(append([]string(nil), retryRequests...), replacedRequests...)
	}
	if rev == r.wst.StableRevision || (rev == r.wst.Release && !again) {
		if r.retry != nil {
			r.events = append(r.events, r.event(EventWarning, fmt.Sprintf(
				"a retry%s was ignored: revision %s is not a failed release", byWhom(r.retry.By), rev)))
		}
		return
	}
	r.startRelease(rev, again)
}

// startRelease begins the release of rev from Pending, with a fresh
// status but the history, the releases and the workload's state kept, as
// a retry does.
func (r *releaser) startRelease(rev string, again bool) {
	wst := *r.wst
	wst.Release, wst.ReleaseStartedAt, wst.Done = rev, &metav1.Time{Time: r.now}, false
	r.st = v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePending, CurrentStep: -1, History: r.st.History,
		Releases: r.st.Releases, Workload: &wst}
	r.wst = r.st.Workload
	by := r.ws.RequestedBy
	if again {
		by = r.retry.By
	}
	r.st.Releases = append(r.st.Releases, v1alpha1.Release{Revision: rev, Images: r.ws.Images, By: clip(by, 256), StartedAt: metav1.Time{Time: r.now}})
	if n := len(r.st.Releases); n > v1alpha1.MaxReleases {
		r.st.Releases = append([]v1alpha1.Release(nil), r.st.Releases[n-v1alpha1.MaxReleases:]...)
	}
	how := "the template changed"
	if by != "" {
		how = "images set by " + by
	}
	if again {
		how = "retried" + byWhom(r.retry.By)
	}
	if refused := r.checkTemplate(); refused != "" {
		msg := fmt.Sprintf("release of revision %s (%s) refused: %s; no pod was started and stable serves as before",
			rev, ImagesString(r.ws.Images), refused)
		r.enter(v1alpha1.PhaseFailed, ReasonTemplateRefused, msg)
		r.closeRelease(string(v1alpha1.PhaseFailed), msg)
		r.wst.Done = true
		return
	}
	r.transition(v1alpha1.PhasePending, ReasonReleaseStarted, fmt.Sprintf("release of revision %s (%s): %s; starting %s",
		rev, ImagesString(r.ws.Images), how, r.w.CanaryCopy()), EventReleaseStarted)
	r.actedBy(by)
	r.setCondition(CondProgressing, metav1.ConditionUnknown, ReasonReleaseStarted, r.st.Message)
	r.act(ActionSetTrack, TrackCanary, rev, r.canaryReplicas())
	r.requeue = releaseWaitForWorkload
}

// bringUpCanary runs the release's template on the canary copy and lets
// Next start the steps once it is ready, or fails the release at the
// progress deadline.
func (r *releaser) bringUpCanary() {
	n, rev, canary := r.canaryReplicas(), r.wst.Release, r.ws.Canary
	if !canary.Runs(rev, n) {
		r.act(ActionSetTrack, TrackCanary, rev, n)
	}
	if canary.At(rev, n) {
		// The canary subset selects the canary's pods only once they are
		// ready, and before any traffic goes to it.
		r.act(ActionSelectCanary, TrackCanary, "", 0)
		r.proceed = true
		return
	}
	if r.deadlinePassed() {
		r.enter(v1alpha1.PhaseFailed, ReasonCanaryNotReady, fmt.Sprintf(
			"release of revision %s failed: %s was not ready within progressDeadline %s (%d/%d ready%s); no traffic was sent to it",
			rev, r.w.CanaryCopy(), r.spec.ProgressDeadline.Duration, canary.Ready, n, stuck(canary)))
		return
	}
	r.st.Message = fmt.Sprintf("release of revision %s: waiting for %s to be ready: %d/%d", rev, r.w.CanaryCopy(), canary.Ready, n)
	r.requeue = releaseWaitForWorkload
}

// checkTemplate checks the template against the sidecar rules before it
// runs: injection must be on, and the sidecar's requests and limits set
// (or only warned about, with spec.preflight.sidecarResources: Warn). It
// records the SidecarResources condition and returns why the template is
// refused, or "".
func (r *releaser) checkTemplate() string {
	if r.ws.InjectionOff != "" {
		msg := fmt.Sprintf("its pod template turns the Istio sidecar off (%s), so the canary could be neither routed nor measured", r.ws.InjectionOff)
		r.setCondition(CondSidecarInjection, metav1.ConditionFalse, "InjectionDisabled", msg)
		return msg
	}
	if len(r.ws.SidecarGaps) == 0 {
		r.setCondition(CondSidecarResources, metav1.ConditionTrue, "Set", "the pod template sets the istio-proxy sidecar's requests and limits")
		return ""
	}
	msg := fmt.Sprintf("the pod template does not set the istio-proxy sidecar's %s (set the sidecar.istio.io/proxyCPU, proxyMemory, proxyCPULimit and proxyMemoryLimit annotations, or an istio-proxy container's resources)",
		strings.Join(r.ws.SidecarGaps, ", "))
	r.setCondition(CondSidecarResources, metav1.ConditionFalse, "Missing", msg)
	if r.spec.Preflight.SidecarResources == v1alpha1.SidecarResourcesWarn {
		return ""
	}
	return msg + "; or set spec.preflight.sidecarResources: Warn"
}

func (r *releaser) deadlinePassed() bool {
	s := r.wst.ReleaseStartedAt
	return s != nil && !r.now.Before(s.Add(r.spec.ProgressDeadline.Duration))
}

// supersede ends the running release because the template changed again:
// traffic returns to stable at once, and the newest template's release
// starts once the route is back. It is never merged into the running one.
func (r *releaser) supersede() {
	msg := fmt.Sprintf("release of revision %s superseded by revision %s (%s); traffic returned to stable (100/0), and the new release starts next",
		r.wst.Release, r.ws.Revision, ImagesString(r.ws.Images))
	r.st.CanaryWeight = 0
	r.enter(v1alpha1.PhaseAborted, ReasonSuperseded, msg)
	r.closeRelease(OutcomeSuperseded, msg)
	r.requeue = releaseWaitForWorkload
}

// finish carries out a release's end on the copies: after a success the
// stable copy takes the new revision, the route returns to it and the
// canary is scaled down; after any other end the canary is scaled down
// once the route is back on stable.
func (r *releaser) finish() {
	n, rev := r.stableReplicas(), r.wst.Release
	if r.st.Phase == v1alpha1.PhaseSucceeded && r.wst.StableRevision != rev {
		if !r.ws.Stable.Runs(rev, n) {
			r.act(ActionSetTrack, TrackStable, rev, n)
		}
		if !r.ws.Stable.At(rev, n) {
			r.st.Message = fmt.Sprintf("promoting revision %s: %s takes it while the canary serves 100%%: %d/%d ready",
				rev, r.w.StableCopy(), r.ws.Stable.Ready, n)
			r.requeue = releaseWaitForWorkload
			return
		}
		r.wst.StableRevision = rev
		r.st.CanaryWeight = 0
		r.transition(v1alpha1.PhaseSucceeded, ReasonStableUpdated, fmt.Sprintf(
			"revision %s is the new stable: %s runs it, and the route goes back to 100/0 on it", rev, r.w.StableCopy()), EventStableUpdated)
		r.requeue = releaseWaitForWorkload
		return
	}
	if r.st.CanaryWeight != 0 || r.st.AppliedWeight != 0 {
		r.requeue = releaseWaitForWorkload // the engine puts 100/0 on the route first
		return
	}
	// The canary subset goes back to the stable pods before the canary's
	// go away.
	r.act(ActionSelectCanary, TrackStable, "", 0)
	if r.ws.Canary.Replicas != 0 {
		r.act(ActionSetTrack, TrackCanary, r.ws.Canary.Revision, 0)
	}
	outcome := string(r.st.Phase)
	r.closeRelease(outcome, r.old.Message)
	r.wst.Done = true
	r.st.Message = fmt.Sprintf("revision %s serves as stable; the next change of %s's template is a release", r.wst.StableRevision, r.w.Deployment)
	if outcome != string(v1alpha1.PhaseSucceeded) {
		r.st.Message = fmt.Sprintf("release of revision %s %s; revision %s serves as stable, and the next change of %s's template is a release (or retry this one)",
			rev, outcomeWords(outcome, r.releaseOutcome()), r.wst.StableRevision, r.w.Deployment)
	}
}

// closeRelease records the end of the running release, unless it is
// already recorded (a superseded release keeps that outcome).
func (r *releaser) closeRelease(outcome, reason string) {
	n := len(r.st.Releases)
	if n == 0 || r.st.Releases[n-1].Revision != r.wst.Release || r.st.Releases[n-1].Outcome != "" {
		return
	}
	rel := &r.st.Releases[n-1]
	rel.Outcome, rel.Reason, rel.FinishedAt = outcome, clip(reason, 1024), &metav1.Time{Time: r.now}
	rel.WorstCheck = clip(worstCheck(r.st.Analysis.Checks), 256)
}

func (r *releaser) releaseOutcome() string {
	if n := len(r.st.Releases); n > 0 {
		return r.st.Releases[n-1].Outcome
	}
	return ""
}

func outcomeWords(phase, recorded string) string {
	if recorded == OutcomeSuperseded {
		return "was superseded"
	}
	return "ended " + phase
}

// worstCheck names the failing check with the most evidence, else the
// first inconclusive one, e.g. "error-rate (prometheus): canary 20% vs stable 0.5%".
func worstCheck(checks []v1alpha1.CheckStatus) string {
	var worst *v1alpha1.CheckStatus
	for i := range checks {
		c := &checks[i]
		switch {
		case c.Verdict == string(analysis.Fail) && (worst == nil || worst.Verdict != c.Verdict || c.Evidence > worst.Evidence):
			worst = c
		case c.Verdict == string(analysis.Inconclusive) && worst == nil:
			worst = c
		}
	}
	if worst == nil {
		return ""
	}
	name := worst.Check
	if worst.Hop != "" {
		name += " " + worst.Hop
	}
	return fmt.Sprintf("%s (%s) %s: canary %.3g%s vs stable %.3g%s", name, worst.Source, worst.Verdict,
		worst.Canary, worst.Unit, worst.Stable, worst.Unit)
}

func (r *releaser) act(k ActionKind, tr Track, rev string, n int32) {
	r.actions = append(r.actions, WorkloadAction{Kind: k, Track: tr, Revision: rev, Replicas: n})
}

func stuck(t TrackState) string {
	if t.Stuck == "" {
		return ""
	}
	return ": " + t.Stuck
}
