package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Recorder emits Kubernetes Events; client-go's events.EventRecorder
// satisfies it.
type Recorder interface {
	// Eventf records an event about regarding.
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// Options are the engine's dependencies.
type Options struct {
	// Client reads and writes Rollouts.
	Client client.Client
	// Router shifts traffic.
	Router TrafficRouter
	// Analyzer judges canary against stable on every tick.
	Analyzer Analyzer
	// Notifier receives every event through a bounded queue; nil drops them.
	Notifier Notifier
	// Recorder emits Kubernetes Events; nil emits none.
	Recorder Recorder
	// Clock tells the time; nil is the wall clock.
	Clock Clock
	// MaxConcurrentReconciles is how many rollouts are reconciled at once,
	// so that one rollout's slow tick never delays another's rollback.
	// Zero means controller-runtime's default (one).
	MaxConcurrentReconciles int
	// Log is the logger; nil discards.
	Log *slog.Logger
	// Metrics receives the engine's metrics; nil registers none.
	Metrics prometheus.Registerer
	// Workloads delivers the Deployments of workload-mode Rollouts; nil
	// leaves such Rollouts waiting with an error.
	Workloads WorkloadManager
	// Tenancy says which namespaces' series a rollout's custom queries and
	// match override may select; nil allows its own namespace only.
	Tenancy *analysis.Tenancy
	// DataPlane tells whether the proxies carry a written weight; nil
	// stops at the VirtualService (see dataplane.go).
	DataPlane DataPlane
	// DataPlaneTimeout is how long the proxies get to carry a written
	// weight before the rollout is held; zero is DefaultDataPlaneTimeout.
	DataPlaneTimeout time.Duration
	// Live is told each tick's status that was not written (see
	// LiveStatus), for the read model; nil tells no one.
	Live LiveStatus
	// ScreenEvery is how often an Analyzer that is a Screener is asked
	// for the rollouts to tick first (see screen.go); zero is
	// DefaultScreenEvery.
	ScreenEvery time.Duration
}

// Engine reconciles Rollouts: on each tick it observes, calls Next and
// carries out the decision.
type Engine struct {
	o        Options
	queue    *notifyQueue
	metrics  *engineMetrics
	meshes   meshChecks
	analyses *analyses
	live     *liveStatuses
	hurried  *hurried
}

// NewEngine checks the options and returns an engine.
func NewEngine(o Options) (*Engine, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("rollout engine: Client is required")
	case o.Router == nil:
		return nil, errors.New("rollout engine: Router is required")
	case o.Analyzer == nil:
		return nil, errors.New("rollout engine: Analyzer is required")
	}
	if o.Notifier == nil {
		o.Notifier = NopNotifier{}
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newEngineMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	return &Engine{o: o, queue: newNotifyQueue(o.Notifier, o.Log), metrics: m, analyses: newAnalyses(), live: newLiveStatuses(), hurried: newHurried()}, nil
}

// Series are the engine's series labelled by namespace and rollout, to be
// served beside the registry of Options.Metrics (see RolloutSeries).
func (e *Engine) Series() *RolloutSeries { return e.metrics.series }

// SetupWithManager registers the engine as the Rollout controller. Ticks
// come from RequeueAfter; status-only updates (the engine's own writes) do
// not trigger a reconcile.
func (e *Engine) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(e.queue); err != nil {
		return fmt.Errorf("add notification queue: %w", err)
	}
	if s, ok := e.o.Analyzer.(Screener); ok {
		if err := mgr.Add(e.screenRunnable(s)); err != nil {
			return fmt.Errorf("add the screen of suspect canaries: %w", err)
		}
	}
	// checkRouteFree lists the Rollouts of one VirtualService, not of the
	// namespace: starting N rollouts in one namespace costs N, not N².
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Rollout{}, virtualServiceField,
		func(o client.Object) []string { return []string{o.(*v1alpha1.Rollout).Spec.VirtualService} }); err != nil {
		return fmt.Errorf("index Rollouts by VirtualService: %w", err)
	}
	// A Rollout is enqueued by rolloutHandler, which puts a canary that
	// may be failing ahead of the others (see priority.go).
	changed := predicate.Or[*v1alpha1.Rollout](
		predicate.TypedGenerationChangedPredicate[*v1alpha1.Rollout]{},
		predicate.TypedAnnotationChangedPredicate[*v1alpha1.Rollout]{},
		deletionPredicate{},
	)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("rollout").
		WithOptions(controller.Options{MaxConcurrentReconciles: e.o.MaxConcurrentReconciles}).
		WatchesRawSource(source.Kind(mgr.GetCache(), &v1alpha1.Rollout{}, rolloutHandler{}, changed)).
		WatchesRawSource(e.analyses.source()) // an analysis that ended after its reconcile let go
	workloads, err := e.watchWorkloads(mgr)
	if err != nil {
		return err
	}
	if workloads != nil {
		b = b.WatchesRawSource(workloads)
	}
	return b.Complete(e)
}

// Reconcile runs one tick for one Rollout.
func (e *Engine) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ro := &v1alpha1.Rollout{}
	if err := e.o.Client.Get(ctx, req.NamespacedName, ro); err != nil {
		if apierrors.IsNotFound(err) {
			e.metrics.forget(req.Namespace, req.Name) // deleted: no stale series
			e.analyses.forget(req.NamespacedName)
			e.live.forget(req.NamespacedName)
			e.hurried.take(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	e.live.overlay(ro)
	e.metrics.observed(ro)
	res, err := e.tick(ctx, ro)
	if err == nil {
		e.metrics.observed(ro) // as the tick left it stored
	}
	if apierrors.IsConflict(err) {
		// Someone wrote the Rollout since we read it; read again soon.
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	}
	if err != nil {
		e.o.Log.Warn("reconcile failed", "rollout", req.String(), "err", err)
	}
	return res, err
}

func (e *Engine) tick(ctx context.Context, ro *v1alpha1.Rollout) (ctrl.Result, error) {
	if !ro.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, e.finalize(ctx, ro)
	}
	if !controllerutil.ContainsFinalizer(ro, v1alpha1.Finalizer) {
		controllerutil.AddFinalizer(ro, v1alpha1.Finalizer)
		if err := e.o.Client.Update(ctx, ro); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
	}
	if w, ok := WorkloadOf(ro); ok {
		// A delivered workload's releases come and go; its side of each
		// tick is decided first, and Next only while a release runs.
		res, proceed, err := e.deliver(ctx, ro, w, e.o.Clock.Now())
		if err != nil || !proceed {
			return res, err
		}
	}
	if ro.Status.Phase.Terminal() {
		e.metrics.finished(ro.Namespace, ro.Name)
		// A retry is decided once the return to 100/0 is on the route,
		// like any tick; a finished rollout has nothing else to decide,
		// but for following its last weight into the proxies.
		if err := e.converge(ctx, ro, nil, time.Time{}); err != nil {
			return ctrl.Result{}, err
		}
		if _, err := e.followDataPlane(ctx, ro); err != nil || retryRequest(ro) == nil {
			return e.soonerWhilePending(ctrl.Result{}, ro), err
		}
	}
	dpObs, err := e.followDataPlane(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := e.o.Clock.Now()
	obs, wait, err := e.observe(ctx, ro, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	obs.DataPlane = dpObs
	if wait > 0 {
		return e.soonerWhilePending(ctrl.Result{RequeueAfter: wait}, ro), nil
	}
	d := Next(ro.Status, ro.Spec, obs, now)
	if d.Status.CanaryWeight > ro.Status.CanaryWeight && ro.Status.Phase != "" && ro.Status.Phase != v1alpha1.PhasePending {
		// More traffic is about to go to the canary: the mesh is checked
		// afresh first, so that a step never moves traffic into a mesh
		// that no longer carries it.
		pf, err := e.meshes.fresh(ctx, ro, now, func(ctx context.Context) (PreflightReport, error) { return e.o.Router.Preflight(ctx, TargetOf(ro)) })
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("re-check the mesh of %s: %w", TargetOf(ro), err)
		}
		if !pf.OK() {
			obs.Preflight = &pf
			d = Next(ro.Status, ro.Spec, obs, now)
		}
	}
	if err := e.apply(ctx, ro, d); err != nil {
		if d.Status.CanaryWeight == 0 && ro.Status.CanaryWeight != 0 && !apierrors.IsConflict(err) {
			// Traffic goes back to stable even when the decision cannot
			// be recorded: a status that cannot be written must never keep
			// a failing canary's traffic.
			if werr := e.o.Router.SetCanaryWeight(ctx, TargetOf(ro), 0); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		return ctrl.Result{}, err
	}
	e.metrics.decided(d)
	var live *int32
	if obs.LiveKnown {
		live = &obs.LiveWeight
	}
	if err := e.converge(ctx, ro, live, now); err != nil {
		return ctrl.Result{}, err
	}
	p := priorityOf(d.Status)
	after := d.RequeueAfter
	if _, ok := WorkloadOf(ro); ok && d.Status.Phase.Terminal() {
		// A delivered workload's release ends on the copies: look again.
		after = releaseWaitForWorkload
	}
	return e.soonerWhilePending(ctrl.Result{RequeueAfter: sinceTick(after, now, e.o.Clock.Now()), Priority: &p}, ro), nil
}

// sinceTick turns a delay decided at the tick's start into one from now,
// so that the time the tick itself took (the analysis queries, the
// writes) does not stretch every interval. A due tick still waits a
// millisecond: zero would mean no tick at all.
func sinceTick(after time.Duration, start, now time.Time) time.Duration {
	if after <= 0 {
		return 0
	}
	return max(after-now.Sub(start), time.Millisecond)
}

// observe gathers what Next needs. A non-zero wait means the analysis tick
// is not due yet and nothing should be decided now.
func (e *Engine) observe(ctx context.Context, ro *v1alpha1.Rollout, now time.Time) (Observation, time.Duration, error) {
	obs := Observation{Generation: ro.Generation, Abort: abortRequest(ro), Promote: promoteRequest(ro), Retry: retryRequest(ro), PausedBy: pausedBy(ro),
		Created: ro.CreationTimestamp.Time}
	if obs.Retry != nil {
		// A retry is decided from the request and the status alone; the
		// next tick observes the rollout as it then is.
		return obs, 0, nil
	}
	t := TargetOf(ro)
	if ro.Status.Phase == "" || ro.Status.Phase == v1alpha1.PhasePending {
		if ro.Spec.Paused || obs.Abort != nil {
			return obs, 0, nil
		}
		pf, err := e.preflight(ctx, t)
		if err != nil {
			return obs, 0, err
		}
		e.checkAnalysisSpec(ro, &pf)
		e.checkChannels(ro, &pf)
		if err := e.checkRouteFree(ctx, ro, &pf); err != nil {
			return obs, 0, err
		}
		obs.Preflight = &pf
		return obs, 0, nil
	}
	// In progress, the mesh is checked again (every meshRecheck, at once
	// while it is broken): a rollout whose VirtualService, route or
	// subsets went away is paused, not driven on into a mesh that no
	// longer carries its traffic.
	pf, err := e.meshes.check(ctx, ro, now, func(ctx context.Context) (PreflightReport, error) { return e.o.Router.Preflight(ctx, t) })
	if err != nil {
		return obs, 0, fmt.Errorf("re-check the mesh of %s: %w", t, err)
	}
	obs.Preflight = &pf
	w, err := e.o.Router.CanaryWeight(ctx, t)
	if err != nil {
		if obs.Abort != nil || !pf.OK() {
			// Decide without the live weight: an abort always goes
			// through, and a broken mesh pauses the rollout.
			return obs, 0, nil
		}
		e.event(ro, Event{Kind: EventWarning, Message: fmt.Sprintf("cannot read the weights of %s: %v", t, err)})
		return obs, 0, fmt.Errorf("read weights of %s: %w", t, err)
	}
	obs.LiveWeight, obs.LiveKnown = w, true
	spec := ro.Spec.Defaulted()
	// Analysis runs whenever the canary has traffic: progressing, paused,
	// holding outside a window or on a hand-edited weight. The tests use
	// the split of each interval's requests, so any weight will do.
	inProgress := ro.Status.Phase == v1alpha1.PhaseProgressing || ro.Status.Phase == v1alpha1.PhasePaused
	analyze := inProgress && w > 0 && obs.Abort == nil && obs.Promote == nil && ro.Generation == ro.Status.ObservedGeneration
	if !analyze {
		return obs, 0, nil
	}
	hurried := e.hurried.take(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
	if last := ro.Status.Analysis.LastTickAt; last != nil {
		// Reconciles can come early (an annotation changed); ticks keep
		// their interval, but for a canary the screen found beginning to
		// fail (see screen.go).
		if due := last.Add(spec.Analysis.Interval.Duration); now.Before(due) && !hurried {
			return obs, due.Sub(now), nil
		}
	}
	cp := ro.DeepCopy()
	res, ok := e.analyses.result(ctx, ro, func(ctx context.Context) analysis.Result { return e.analyze(ctx, cp, now) })
	if !ok {
		// The analysis goes on without this worker (see async.go); its
		// end queues the rollout again, and the interval is the backstop.
		return obs, spec.Analysis.Interval.Duration, nil
	}
	e.metrics.analysed(ro.Namespace, ro.Name, now, res)
	obs.Result = &res
	return obs, 0, nil
}

func (e *Engine) preflight(ctx context.Context, t Target) (PreflightReport, error) {
	pf, err := e.o.Router.Preflight(ctx, t)
	if err != nil {
		return pf, fmt.Errorf("preflight of %s: %w", t, err)
	}
	if !pf.OK() {
		return pf, nil
	}
	// A rollout starts from 100/0; anything else is someone else's traffic.
	w, err := e.o.Router.CanaryWeight(ctx, t)
	if err != nil {
		return pf, fmt.Errorf("preflight of %s: %w", t, err)
	}
	if w != 0 {
		pf.Failures = append(pf.Failures, Finding{Check: "Weights", Message: fmt.Sprintf(
			"VirtualService %s/%s already sends %d%% to the canary; a rollout starts from 100/0", t.Namespace, t.VirtualService, w)})
	}
	return pf, nil
}

// ChannelLister is implemented by Notifiers that know their channels' names.
type ChannelLister interface {
	// Channels returns the names of the configured channels.
	Channels() []string
}

// checkChannels fails a rollout that names a notification channel the
// controller does not have: its events would go nowhere.
func (e *Engine) checkChannels(ro *v1alpha1.Rollout, pf *PreflightReport) {
	if ro.Spec.Notifications == nil || len(ro.Spec.Notifications.Channels) == 0 {
		return
	}
	var known []string
	if cl, ok := e.o.Notifier.(ChannelLister); ok {
		known = cl.Channels()
	}
	for _, c := range ro.Spec.Notifications.Channels {
		if !slices.Contains(known, c) {
			pf.Failures = append(pf.Failures, Finding{Check: "Notifications", Message: fmt.Sprintf(
				"spec.notifications.channels: no channel named %q is configured (channels: %v)", c, known)})
		}
	}
}

// checkAnalysisSpec adds a preflight failure when the analysis spec does
// not make sense (a custom query that does not render, say) or selects
// series outside the rollout's tenancy scope.
func (e *Engine) checkAnalysisSpec(ro *v1alpha1.Rollout, pf *PreflightReport) {
	if _, err := AnalysisConfigIn(ro.Spec, e.o.Tenancy.Scope(ro.Namespace)); err != nil {
		pf.Failures = append(pf.Failures, Finding{Check: "Analysis", Message: err.Error()})
	}
}

// minAnalysisBudget is the least time a tick's analysis is given.
const minAnalysisBudget = time.Second

func (e *Engine) analyze(ctx context.Context, ro *v1alpha1.Rollout, now time.Time) analysis.Result {
	cfg, err := AnalysisConfigIn(ro.Spec, e.o.Tenancy.Scope(ro.Namespace))
	if err != nil {
		return analysis.Result{Verdict: analysis.Inconclusive, Reason: "the analysis spec is invalid: " + err.Error()}
	}
	// A tick's analysis gets at most one interval (and never less than
	// minAnalysisBudget): a stuck query ends in an inconclusive tick,
	// never in a worker held from other rollouts' ticks.
	ctx, cancel := context.WithTimeout(ctx, max(ro.Spec.Defaulted().Analysis.Interval.Duration, minAnalysisBudget))
	defer cancel()
	start := time.Now()
	res, err := e.o.Analyzer.Analyze(ctx, analysisRequest(ro, cfg, now))
	if err != nil {
		// Failing to measure is never a pass.
		res = analysis.Result{Verdict: analysis.Inconclusive, Reason: "analysis could not run: " + err.Error()}
	}
	e.o.Log.Debug("analysis tick", "rollout", ro.Namespace+"/"+ro.Name, "weight", ro.Status.CanaryWeight,
		"verdict", res.Verdict, "took", time.Since(start), "reason", res.Reason)
	return res
}

// apply records the decision: the engine-initiated pause in the spec, then
// the status (with optimistic concurrency), then the events, then the
// removal of the requests the decision consumed. The weight is written
// afterwards by converge, so a crash in between leaves an intent in the
// status that the next tick completes. The status goes before the
// requests' removal because only the removal starts a reconcile (the
// engine's own status writes do not): that reconcile then reads both.
func (e *Engine) apply(ctx context.Context, ro *v1alpha1.Rollout, d Decision) error {
	if d.Pause && !ro.Spec.Paused {
		base := ro.DeepCopy()
		ro.Spec.Paused = true
		if err := e.o.Client.Patch(ctx, ro, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("pause Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		// The pause bumped the generation; the status reflects it.
		d.Status.ObservedGeneration = ro.Generation
	}
	switch {
	case worthWriting(ro.Status, d.Status):
		ro.Status = d.Status
		if err := e.o.Client.Status().Update(ctx, ro); err != nil {
			return fmt.Errorf("update status of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		e.live.forget(key(ro))
		e.events(ro, d.Events)
		d.Events = nil
	case !equality.Semantic.DeepEqual(ro.Status, d.Status):
		// Only the latest figures changed: they live in memory, for
		// this engine's next tick and for the read model.
		e.live.keep(ro, d.Status)
		if e.o.Live != nil {
			shown := ro.DeepCopy()
			shown.Status = *d.Status.DeepCopy()
			e.o.Live.Live(shown)
		}
	}
	if len(d.Unannotate) == 0 {
		return nil
	}
	if err := e.unannotate(ctx, ro, d.Unannotate); err != nil {
		return err
	}
	e.events(ro, d.Events) // a request refused without a status change
	return nil
}

// writeStatus writes ro's status, its summary brought up to date with
// what the engine changed outside Next (the applied weight, the data
// plane).
func (e *Engine) writeStatus(ctx context.Context, ro *v1alpha1.Rollout) error {
	ro.Status.Summary = SummaryOf(ro.Status)
	return e.o.Client.Status().Update(ctx, ro)
}

// unannotate removes the request annotations keys from ro. The patch
// carries the resourceVersion just read or written, so a request made
// since (a person's abort of the retried rollout) is never removed unseen:
// the patch conflicts and the next tick decides again.
func (e *Engine) unannotate(ctx context.Context, ro *v1alpha1.Rollout, keys []string) error {
	base := ro.DeepCopy()
	for _, k := range keys {
		delete(ro.Annotations, k)
	}
	if err := e.o.Client.Patch(ctx, ro, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("remove the requests %v from Rollout %s/%s: %w", keys, ro.Namespace, ro.Name, err)
	}
	return nil
}

// events records the decision's events. A rollback carries the failed
// checks of the status just recorded, so that its Kubernetes Event lists
// each failure from their fields (Event.Note).
func (e *Engine) events(ro *v1alpha1.Rollout, evs []Event) {
	for _, ev := range evs {
		if ev.Kind == EventRolledBack && ev.Checks == nil {
			ev.Checks = failedChecks(ro.Status)
		}
		e.event(ro, ev)
	}
}

// converge puts the decided weight on the route when a write is pending,
// then records that it is there. live is the weight read this tick, or nil;
// decided is when the weight was decided, or zero when not this tick.
func (e *Engine) converge(ctx context.Context, ro *v1alpha1.Rollout, live *int32, decided time.Time) error {
	st := ro.Status
	want := st.CanaryWeight
	// AppliedWeight can be stale: the status write confirming a weight may
	// have lost a conflict after the weight was written. The live weight,
	// when read this tick, is the truth.
	if st.Phase == v1alpha1.PhaseFailed || (st.AppliedWeight == want && (live == nil || *live == want)) {
		return nil
	}
	t := TargetOf(ro)
	if live == nil {
		w, err := e.o.Router.CanaryWeight(ctx, t)
		if err != nil {
			return fmt.Errorf("read weights of %s: %w", t, err)
		}
		live = &w
	}
	// Never overwrite a hand edit while moving forward; the next tick
	// pauses for it. Returning to stable (want 0) always goes ahead.
	var from []int32
	if want != 0 {
		if *live != want && *live != st.AppliedWeight {
			return nil
		}
		from = []int32{st.AppliedWeight, want}
	}
	err := e.o.Router.SetCanaryWeight(ctx, t, want, from...)
	if errors.Is(err, ErrDrift) && want != 0 {
		return nil // edited by hand since we read it: the next tick pauses
	}
	if err != nil {
		e.event(ro, Event{Kind: EventWarning, Message: fmt.Sprintf("cannot set canary weight %d%% on %s: %v", want, t, err)})
		return fmt.Errorf("set canary weight %d on %s: %w", want, t, err)
	}
	now := e.o.Clock.Now()
	ro.Status.AppliedWeight = want
	if e.o.DataPlane != nil {
		// The proxies are followed from this write on (dataplane.go).
		ro.Status.DataPlane = &v1alpha1.DataPlaneStatus{Weight: want, FromWeight: *live, WrittenAt: metav1.NewMicroTime(now)}
		if !decided.IsZero() {
			ro.Status.DataPlane.DecidedAt = ptrMicro(decided)
		}
	}
	if err := e.writeStatus(ctx, ro); err != nil {
		return fmt.Errorf("record applied weight of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	if st.Phase == v1alpha1.PhaseRolledBack {
		e.metrics.rolledBack(st.Analysis.FirstFailureAt, now)
		if e.o.DataPlane == nil {
			e.queue.push(rollbackEvent(ro, now, st.AppliedWeight))
		} // else notified once the proxies have it (followDataPlane)
	}
	return nil
}

// finalize restores 100/0 when a Rollout is deleted mid-way, then lets the
// deletion proceed. A finished rollout leaves the route as it is, and so
// does one whose route no longer carries its weight.
func (e *Engine) finalize(ctx context.Context, ro *v1alpha1.Rollout) error {
	e.metrics.finished(ro.Namespace, ro.Name)
	if !controllerutil.ContainsFinalizer(ro, v1alpha1.Finalizer) {
		return nil
	}
	st := ro.Status
	// The route is restored only while it carries this rollout's own
	// weight: a finished rollout, or one whose route another rollout or a
	// person has since taken, is left alone. A rollback whose write never
	// happened is still completed: the route is at the last weight this
	// rollout wrote.
	var own []int32
	for _, w := range []int32{st.AppliedWeight, st.CanaryWeight} {
		if w != 0 && !slices.Contains(own, w) {
			own = append(own, w)
		}
	}
	restore := st.Phase != v1alpha1.PhaseSucceeded && st.Phase != v1alpha1.PhaseFailed && len(own) > 0
	if restore {
		t := TargetOf(ro)
		err := e.o.Router.SetCanaryWeight(ctx, t, 0, own...)
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrDrift) {
			return fmt.Errorf("restore 100/0 on %s before deleting Rollout %s/%s: %w", t, ro.Namespace, ro.Name, err)
		}
		if err == nil && !st.Phase.Terminal() {
			// The deletion's own time, so that a retried finalizer re-sends
			// the same event, which receivers can deduplicate.
			e.event(ro, Event{Kind: EventAborted, Time: ro.DeletionTimestamp.Time,
				Message: "deleted mid-rollout; traffic returned to stable (100/0)"})
		}
	}
	controllerutil.RemoveFinalizer(ro, v1alpha1.Finalizer)
	if err := e.o.Client.Update(ctx, ro); err != nil {
		return fmt.Errorf("remove finalizer from Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	return nil
}

func (e *Engine) event(ro *v1alpha1.Rollout, ev Event) {
	ev.Namespace, ev.Name = ro.Namespace, ro.Name
	if ev.Time.IsZero() {
		ev.Time = e.o.Clock.Now()
	}
	if e.o.Recorder != nil {
		typ := corev1.EventTypeNormal
		if ev.Warning() {
			typ = corev1.EventTypeWarning
		}
		e.o.Recorder.Eventf(ro, nil, typ, string(ev.Kind), string(ev.Kind), "%s", ev.Note())
	}
	e.o.Log.Info("rollout event", "rollout", ro.Namespace+"/"+ro.Name, "kind", ev.Kind, "weight", ev.Weight, "message", ev.Message)
	if ev.Kind == EventRolledBack {
		return // notified once the route is confirmed back at 100/0, with the timings
	}
	if n := ro.Spec.Notifications; n != nil {
		ev.Channels, ev.Runbook = n.Channels, n.Runbook
	}
	e.queue.push(ev)
}

// rollbackEvent describes a rollback confirmed on the route at now, from
// the canary weight it had: the failed checks and how long detection and
// rollback took.
func rollbackEvent(ro *v1alpha1.Rollout, now time.Time, from int32) Event {
	st := ro.Status
	ev := Event{Kind: EventRolledBack, Namespace: ro.Namespace, Name: ro.Name, Time: now, Message: st.Message,
		Step: st.CurrentStep, Steps: len(ro.Spec.Defaulted().Steps), CompletedAt: now, Weight: from}
	if n := ro.Spec.Notifications; n != nil {
		ev.Channels, ev.Runbook = n.Channels, n.Runbook
	}
	if f := st.Analysis.FirstFailureAt; f != nil {
		ev.DetectedAt = f.Time
	}
	for _, h := range st.Analysis.History {
		if h.Verdict == string(analysis.Pass) && (ev.DetectedAt.IsZero() || h.Time.Time.Before(ev.DetectedAt)) {
			ev.LastPassAt = h.Time.Time
		}
	}
	// A canary bad from its first tick has no passing tick before: then
	// detection is counted from when its step's weight was set.
	if ev.LastPassAt.IsZero() && st.StepStartedAt != nil && st.StepStartedAt.Time.Before(ev.DetectedAt) {
		ev.LastPassAt = st.StepStartedAt.Time
	}
	ev.Checks = failedChecks(st)
	return ev
}

// pausedBy is who set ro's spec.paused as it is now, through serin; ""
// when no one did at this generation (AnnotationPausedBy).
func pausedBy(ro *v1alpha1.Rollout) string {
	gen, user, ok := strings.Cut(ro.Annotations[v1alpha1.AnnotationPausedBy], "/")
	if !ok || gen != strconv.FormatInt(ro.Generation, 10) {
		return ""
	}
	return user
}

func abortRequest(ro *v1alpha1.Rollout) *Request {
	reason, ok := ro.Annotations[v1alpha1.AnnotationAbort]
	if !ok {
		return nil
	}
	return &Request{By: ro.Annotations[v1alpha1.AnnotationAbortBy], Reason: reason}
}

func promoteRequest(ro *v1alpha1.Rollout) *Request {
	if ro.Annotations[v1alpha1.AnnotationPromote] != "true" {
		return nil
	}
	return &Request{By: ro.Annotations[v1alpha1.AnnotationPromoteBy]}
}

func retryRequest(ro *v1alpha1.Rollout) *Request {
	if ro.Annotations[v1alpha1.AnnotationRetry] != "true" {
		return nil
	}
	return &Request{By: ro.Annotations[v1alpha1.AnnotationRetryBy]}
}

// deletionPredicate lets through updates that start a deletion.
type deletionPredicate struct {
	predicate.TypedFuncs[*v1alpha1.Rollout]
}

func (deletionPredicate) Update(e event.TypedUpdateEvent[*v1alpha1.Rollout]) bool {
	return e.ObjectNew != nil && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}
