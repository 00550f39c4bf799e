package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/meshsim"
)

// BenchmarkRollbackLatencyHangingReceiver is BenchmarkRollbackLatency with
// a notification channel whose receiver hangs on every request, run side
// by side with it: benchRuns pairs, each pair a run without notifications
// (runRollback) then one with the hanging channel, so that both see the
// same machine. Delivery is off the reconcile path, so the two columns
// should match. Timings are reported, not asserted; a hanging receiver that
// was never called fails the benchmark, since then it measured nothing.
func BenchmarkRollbackLatencyHangingReceiver(b *testing.B) {
	var base, hang []rollbackRun
	var baseM, hangM ctrlMetrics
	rows := make([]string, 0, benchRuns)
	for i := range benchRuns {
		r0 := runRollback(b, fmt.Sprintf("rollback-%02d", i), benchRPS, 0.2, nil)
		r1, calls := runRollbackHanging(b, i)
		if calls == 0 {
			b.Errorf("run %d: the hanging receiver was never called", i+1)
		}
		base, hang = append(base, r0), append(hang, r1)
		baseM.add(r0.ctrl)
		hangM.add(r1.ctrl)
		rows = append(rows, fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%d\t  %s", i+1, seconds(r0.latency), seconds(r1.latency),
			detectSeconds(r0.ctrl), detectSeconds(r1.ctrl), calls, r1.phase))
	}
	table(fmt.Sprintf("BenchmarkRollbackLatencyHangingReceiver: %d pairs, 20%% errors on checkout v2 at 10%%, %d rps; "+
		"one channel whose receiver never answers (per-send timeout 10 s)", benchRuns, benchRPS),
		"run\tno channel: fault → 0% (s)\thanging: fault → 0% (s)\tno channel: detect → 100/0 (s)\thanging: detect → 100/0 (s)\thanging calls\t  phase", rows)
	lb, lh := latencies(base), latencies(hang)
	table("rollback latency, fault → canary weight 0 on the watch", "\tp50 (s)\tp95 (s)\tmax (s)\trollbacks\t", []string{
		fmt.Sprintf("no channel\t%.2f\t%.2f\t%.2f\t%.0f\t", percentile(lb, 50), percentile(lb, 95), percentile(lb, 100), baseM.rollbacks),
		fmt.Sprintf("hanging receiver\t%.2f\t%.2f\t%.2f\t%.0f\t", percentile(lh, 50), percentile(lh, 95), percentile(lh, 100), hangM.rollbacks),
	})
	hangM.print()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(percentile(lh, 50), "p50_s")
	b.ReportMetric(percentile(lh, 95), "p95_s")
	b.ReportMetric(percentile(lh, 100), "max_s")
	b.ReportMetric(percentile(lb, 50), "baseline_p50_s")
	b.ReportMetric(percentile(lb, 95), "baseline_p95_s")
	b.ReportMetric(hangM.rollbacks, "rollbacks_total")
}

func latencies(rs []rollbackRun) []float64 {
	out := make([]float64, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.latency.Seconds())
	}
	return out
}

// detectSeconds is the controller's one observation of first failed tick
// to 100/0, or "-".
func detectSeconds(m ctrlMetrics) string {
	if m.count != 1 {
		return "-"
	}
	return fmt.Sprintf("%.2f", m.sum)
}

// runRollbackHanging is runRollback with a Slack channel, for every
// default event, whose receiver hangs on every request. It also returns
// how many requests the receiver got.
func runRollbackHanging(b *testing.B, i int) (rollbackRun, int) {
	var rc hangingReceiver
	r := runRollback(b, fmt.Sprintf("hanging-%02d", i), benchRPS, 0.2, func(s testing.TB) func(*meshEnv) {
		rc = newHangingReceiver(s) // closed after the controller stops
		return func(e *meshEnv) {
			withNotify(e.env, notifyChannel{name: "stuck", typ: notify.TypeSlack, rc: rc.hookReceiver})
		}
	})
	return r, len(rc.got())
}

// TestHangingReceiverDoesNotDelayRollback: the only channel hangs on every
// request. A canary with 20% errors still rolls back, with the route at
// 100/0, within the deadlines of the analysis tests, and the controller
// observes that one rollback.
func TestHangingReceiverDoesNotDelayRollback(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	rc := newHangingReceiver(t)
	withNotify(e.env, notifyChannel{name: "stuck", typ: notify.TypeSlack, rc: rc.hookReceiver})
	e.fault("v2", meshsim.Fault{ErrorRate: 0.2})
	p := e.startController()
	e.rollout("errors", analysed(30*time.Second, nil))
	e.waitPhase("errors", v1alpha1.PhaseRolledBack, 90*time.Second)
	e.eventually(5*time.Second, "route back at 100/0", func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == 100 && c == 0, fmt.Sprintf("%d/%d", s, c)
	})
	var m ctrlMetrics
	e.eventually(5*time.Second, "the rollback in /metrics", func() (bool, string) {
		var err error
		m, err = scrapeController(p.addr)
		if err != nil {
			return false, err.Error()
		}
		return m.count == 1 && m.rollbacks == 1, fmt.Sprintf("%s count %v, rollbacks %v", detectionMetric, m.count, m.rollbacks)
	})
	if len(rc.got()) == 0 {
		t.Errorf("the hanging receiver was never called: the channel was not in use")
	}
}

// hangingReceiver answers nothing: each request blocks until the test
// ends or the client gives up.
type hangingReceiver struct {
	*hookReceiver
}

func newHangingReceiver(t testing.TB) hangingReceiver {
	t.Helper()
	release := make(chan struct{})
	rc := newHookReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return 0
	})
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for handlers
	return hangingReceiver{rc}
}
