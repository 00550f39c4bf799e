package rollout

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// The controller's metrics. Series labelled by namespace and rollout are
// bounded by the Rollouts the controller reconciles (on the leader only,
// since only it reconciles), and go away with their Rollout: nothing is
// left behind for a deleted one. State gauges follow kube-state-metrics'
// convention: serin_rollout_phase has a series for every phase, 1 for the
// current one and 0 for the others, as kube_pod_status_phase does, and so
// does serin_analysis_check_verdict for every verdict. A counter starts at
// zero for every label value known in advance, so that rate() and
// increase() are defined before the first event and an alert can fire on
// the first one.
//
// The dashboard (deploy/grafana) queries these names; test/e2e's
// TestDashboardQueriesReturnData checks that each of its panels finds
// data.

// allPhases are the phases serin_rollout_phase has a series for.
var allPhases = []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused,
	v1alpha1.PhaseSucceeded, v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed}

// allVerdicts are the verdicts a check and a tick can have.
var allVerdicts = []analysis.Verdict{analysis.Pass, analysis.Fail, analysis.Inconclusive}

// engineMetrics are what the controller says about its rollouts, their
// analysis and their rollbacks.
type engineMetrics struct {
	rollbacks *prometheus.CounterVec
	detection prometheus.Histogram
	dataPlane prometheus.Histogram
	ticks     *prometheus.CounterVec
	// suspects counts the rollouts the screen named (screen.go).
	suspects prometheus.Counter
	// series are the series of each rollout: its info, phase, weight,
	// step, the time of its last tick (the live figure that the status,
	// written only on change, no longer carries) and its checks'
	// verdicts. They are not in the registry (see RolloutSeries); cmd
	// serves them beside it.
	series *RolloutSeries
}

// checkKey names one check's series: check, hop and source.
type checkKey struct{ check, hop, source string }

func newEngineMetrics(reg prometheus.Registerer) (*engineMetrics, error) {
	m := &engineMetrics{
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_rollbacks_total",
			Help: "Rollbacks decided, by the kind of cause: analysis, inconclusive, window or stable-slo.",
		}, []string{"reason"}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "serin_rollback_detection_to_rollback_seconds",
			Help:    "Time from the first failed analysis tick to the route confirmed back at 100/0.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60},
		}),
		dataPlane: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "serin_rollback_dataplane_seconds",
			Help:    "Time from a rollback's decision until every connected proxy that routes the service had acknowledged 100/0 (with --istiod-url).",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60},
		}),
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_analysis_ticks_total",
			Help: "Analysis ticks run, all rollouts together, by the tick's verdict.",
		}, []string{"verdict"}),
		suspects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serin_screen_suspects_total",
			Help: "Rollouts the screen between ticks found beginning to fail and queued first for an early tick.",
		}),
		series: newRolloutSeries(),
	}
	for _, r := range RollbackReasons {
		m.rollbacks.WithLabelValues(string(r))
	}
	for _, v := range allVerdicts {
		m.ticks.WithLabelValues(string(v))
	}
	return m, register(reg, m.rollbacks, m.detection, m.dataPlane, m.ticks, m.suspects)
}

// register registers cs with reg, nil registering none. A collector
// registered already (a second engine in one process) is kept.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// rolledBack records a rollback confirmed on the route at now.
func (m *engineMetrics) rolledBack(detected *metav1.Time, now time.Time) {
	if detected != nil {
		m.detection.Observe(now.Sub(detected.Time).Seconds())
	}
}

// dataPlaneRolledBack records a rollback decided at decided that every
// proxy had at confirmed.
func (m *engineMetrics) dataPlaneRolledBack(decided, confirmed time.Time) {
	if !decided.IsZero() {
		m.dataPlane.Observe(confirmed.Sub(decided).Seconds())
	}
}

// decided counts the rollback a recorded decision made, if any.
func (m *engineMetrics) decided(d Decision) {
	if d.Rollback != "" {
		m.rollbacks.WithLabelValues(string(d.Rollback)).Inc()
	}
}

// analysed records that a rollout was analysed at now with res: the tick,
// its time, and each check's verdict, replacing the previous tick's.
func (m *engineMetrics) analysed(ns, name string, now time.Time, res analysis.Result) {
	m.ticks.WithLabelValues(string(res.Verdict)).Inc()
	checks := sortedChecks(res)
	m.series.update(ns, name, func(s *rolloutState) {
		s.ticked, s.lastTick = true, float64(now.UnixNano())/1e9
		s.checks = checks
	})
}

// finished forgets the last tick's time of a rollout that is no longer
// analysed, so that the gauge's series stay bounded by the rollouts in
// progress.
func (m *engineMetrics) finished(ns, name string) {
	m.series.update(ns, name, func(s *rolloutState) { s.ticked = false })
}

// observed records the state of ro as stored: its target, phase, weight
// and step. A Rollout being deleted is forgotten instead. The check
// verdicts of a rollout that ended go, but for a rollback's: a failure
// rolls back in the tick that finds it, so its verdicts would otherwise
// never be scraped. They say which check failed until the rollout is
// retried (whose ticks replace them) or deleted.
func (m *engineMetrics) observed(ro *v1alpha1.Rollout) {
	if !ro.DeletionTimestamp.IsZero() {
		m.forget(ro.Namespace, ro.Name)
		return
	}
	info := infoLabels{mode: modeOf(ro), virtualService: ro.Spec.VirtualService}
	if w, ok := WorkloadOf(ro); ok {
		info.workload = w.Deployment
	}
	phase := ro.Status.Phase
	if phase == "" {
		phase = v1alpha1.PhasePending
	}
	step := ro.Status.CurrentStep
	if ro.Status.Phase == "" {
		step = -1 // not started: the zero value is no step
	}
	m.series.update(ro.Namespace, ro.Name, func(s *rolloutState) {
		s.observed, s.info, s.phase = true, info, phase
		s.weight, s.step = float64(ro.Status.AppliedWeight), float64(step)
		if phase.Terminal() && phase != v1alpha1.PhaseRolledBack {
			s.checks = nil
		}
	})
}

// forget removes every series of a Rollout that no longer exists.
func (m *engineMetrics) forget(ns, name string) { m.series.forget(ns, name) }

// modeOf names how a Rollout splits traffic: by subset, by host, or
// delivering a Deployment (whose subsets serin owns).
func modeOf(ro *v1alpha1.Rollout) string {
	switch {
	case ro.Spec.Workload != nil:
		return "workload"
	case TargetOf(ro).HostMode():
		return "host"
	default:
		return "subset"
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Query outcomes, the values of serin_analysis_queries_total's outcome.
const (
	QuerySuccess = "success"
	QueryError   = "error"
	QueryTimeout = "timeout"
)

// QueryMetrics count the queries analysis sends to its data sources:
// serin_analysis_queries_total{source,outcome} and
// serin_analysis_query_duration_seconds{source}. The sources take an
// observer in their Options (SourceObserver satisfies them), so that
// analysis never imports rollout; cmd wires the two together.
type QueryMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewQueryMetrics registers the query metrics with reg; nil registers
// none.
func NewQueryMetrics(reg prometheus.Registerer) (*QueryMetrics, error) {
	m := &QueryMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_analysis_queries_total",
			Help: "Queries sent to analysis data sources, by source (prometheus, jaeger) and outcome (success, error, timeout).",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "serin_analysis_query_duration_seconds",
			Help:    "How long each query to an analysis data source took, answer read included.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"source"}),
	}
	return m, register(reg, m.total, m.duration)
}

// Source returns the observer of one data source, named as the checks'
// source is ("prometheus", "jaeger"); its outcomes start at zero.
func (m *QueryMetrics) Source(name string) SourceObserver {
	return SourceObserver{
		success:  m.total.WithLabelValues(name, QuerySuccess),
		failed:   m.total.WithLabelValues(name, QueryError),
		timedOut: m.total.WithLabelValues(name, QueryTimeout),
		duration: m.duration.WithLabelValues(name),
	}
}

// SourceObserver counts one data source's queries. It satisfies
// prometheus.Observer and jaeger.Observer of the analysis sources.
type SourceObserver struct {
	success, failed, timedOut prometheus.Counter
	duration                  prometheus.Observer
}

// ObserveQuery records one query that took d and ended with err, nil
// on success. A deadline passed, or a network timeout, is a timeout.
func (o SourceObserver) ObserveQuery(d time.Duration, err error) {
	o.duration.Observe(d.Seconds())
	var to interface{ Timeout() bool }
	switch {
	case err == nil:
		o.success.Inc()
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &to) && to.Timeout()):
		o.timedOut.Inc()
	default:
		o.failed.Inc()
	}
}
