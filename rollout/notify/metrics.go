package notify

import "github.com/prometheus/client_golang/prometheus"

// Notification outcomes, the values of serin_notifications_total's
// outcome label.
const (
	OutcomeSent    = "sent"
	OutcomeFailed  = "failed"
	OutcomeRetried = "retried"
	OutcomeDropped = "dropped"
)

var (
	notificationsDesc = prometheus.NewDesc("serin_notifications_total",
		"Notifications by channel and outcome: sent (delivered), failed (given up after a failure not worth retrying or the last retry), retried (an attempt failed and was tried again), dropped (pushed out of a full queue, or queued at shutdown).",
		[]string{"channel", "outcome"}, nil)
	queuedDesc = prometheus.NewDesc("serin_notification_queue_length",
		"Events waiting for each channel, the one being sent included.",
		[]string{"channel"}, nil)
)

// Collector returns the Notifier's metrics, read from each channel's
// queue (Stats) when scraped: every configured channel has every outcome,
// from zero.
func (n *Notifier) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Notifier }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- notificationsDesc
	ch <- queuedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.n.Stats() {
		for _, o := range []struct {
			outcome string
			n       uint64
		}{{OutcomeSent, s.Delivered}, {OutcomeFailed, s.Failed}, {OutcomeRetried, s.Retried}, {OutcomeDropped, s.Dropped}} {
			ch <- prometheus.MustNewConstMetric(notificationsDesc, prometheus.CounterValue, float64(o.n), s.Channel, o.outcome)
		}
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(s.Queued), s.Channel)
	}
}
