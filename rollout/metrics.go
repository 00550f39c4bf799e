package rollout

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// engineMetrics are what the controller says about its own rollbacks.
type engineMetrics struct {
	rollbacks prometheus.Counter
	detection prometheus.Histogram
	// lastTick is when each rollout's analysis last ran: the live figure
	// that the status, written only on change, no longer carries.
	lastTick *prometheus.GaugeVec
}

func newEngineMetrics(reg prometheus.Registerer) (engineMetrics, error) {
	m := engineMetrics{
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serin_rollbacks_total",
			Help: "Rollouts rolled back by analysis.",
		}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "serin_rollback_detection_to_rollback_seconds",
			Help:    "Time from the first failed analysis tick to the route confirmed back at 100/0.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60},
		}),
		lastTick: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_rollout_last_analysis_timestamp_seconds",
			Help: "When each rollout in progress was last analysed, as a Unix time.",
		}, []string{"namespace", "rollout"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rollbacks, m.detection, m.lastTick} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return m, err
			}
		}
	}
	return m, nil
}

// rolledBack records a rollback confirmed on the route at now.
func (m engineMetrics) rolledBack(detected *metav1.Time, now time.Time) {
	m.rollbacks.Inc()
	if detected != nil {
		m.detection.Observe(now.Sub(detected.Time).Seconds())
	}
}

// analysed records that a rollout was analysed at now.
func (m engineMetrics) analysed(ns, name string, now time.Time) {
	m.lastTick.WithLabelValues(ns, name).Set(float64(now.UnixNano()) / 1e9)
}

// finished forgets a rollout that is no longer analysed, so the gauge's
// series stay bounded by the rollouts in progress.
func (m engineMetrics) finished(ns, name string) {
	m.lastTick.DeleteLabelValues(ns, name)
}
