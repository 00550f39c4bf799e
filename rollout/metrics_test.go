package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

func metricsRollout(phase v1alpha1.Phase, step, weight int32) *v1alpha1.Rollout {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"},
		Spec: v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"}}
	ro.Status.Phase, ro.Status.CurrentStep, ro.Status.AppliedWeight = phase, step, weight
	return ro
}

// series returns the gathered series of name as "labels value" lines.
func series(t *testing.T, reg prometheus.Gatherer, name string) []string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out = append(out, fmt.Sprintf("%s %g", strings.Join(ls, ","), v))
		}
	}
	return out
}

func TestRolloutSeriesFollowTheRollout(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	m, err := newEngineMetrics(registry)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.Gatherers{registry, m.series} // checks the families as a registry would
	m.observed(metricsRollout(v1alpha1.PhaseProgressing, 1, 25))
	if got := series(t, reg, "serin_rollout_info"); len(got) != 1 || got[0] != "mode=subset,namespace=shop,rollout=checkout,virtual_service=checkout,workload= 1" {
		t.Errorf("info = %v", got)
	}
	phases := series(t, reg, "serin_rollout_phase")
	if len(phases) != len(allPhases) || !slices.Contains(phases, "namespace=shop,phase=Progressing,rollout=checkout 1") || !slices.Contains(phases, "namespace=shop,phase=Paused,rollout=checkout 0") {
		t.Errorf("phase = %v, want every phase, 1 for Progressing", phases)
	}
	if got := series(t, reg, "serin_rollout_canary_weight"); len(got) != 1 || got[0] != "namespace=shop,rollout=checkout 25" {
		t.Errorf("weight = %v", got)
	}
	if got := series(t, reg, "serin_rollout_step"); len(got) != 1 || got[0] != "namespace=shop,rollout=checkout 1" {
		t.Errorf("step = %v", got)
	}

	moved := metricsRollout(v1alpha1.PhaseProgressing, 1, 25)
	moved.Spec.VirtualService = "checkout-v2"
	m.observed(moved)
	if got := series(t, reg, "serin_rollout_info"); len(got) != 1 || !strings.Contains(got[0], "virtual_service=checkout-v2") {
		t.Errorf("info after the VirtualService changed = %v, want one series naming the new one", got)
	}

	pending := metricsRollout("", 0, 0)
	m.observed(pending)
	if got := series(t, reg, "serin_rollout_step"); got[0] != "namespace=shop,rollout=checkout -1" {
		t.Errorf("step before the start = %v, want -1", got)
	}
	if !slices.Contains(series(t, reg, "serin_rollout_phase"), "namespace=shop,phase=Pending,rollout=checkout 1") {
		t.Errorf("a rollout without a phase yet is not Pending")
	}

	gone := metricsRollout(v1alpha1.PhaseProgressing, 1, 25)
	gone.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	m.analysed("shop", "checkout", time.Now(), analysis.Result{Verdict: analysis.Pass, Checks: []analysis.CheckResult{{Check: "error-rate", Source: "prometheus", Verdict: analysis.Pass}}})
	m.observed(gone)
	for _, name := range []string{"serin_rollout_info", "serin_rollout_phase", "serin_rollout_canary_weight", "serin_rollout_step",
		"serin_analysis_check_verdict", "serin_rollout_last_analysis_timestamp_seconds"} {
		if got := series(t, reg, name); len(got) != 0 {
			t.Errorf("%s of a deleted Rollout: %v, want none", name, got)
		}
	}
}

func TestCheckVerdictSeries(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	m, err := newEngineMetrics(registry)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.Gatherers{registry, m.series} // checks the families as a registry would
	now := time.Now()
	errRate := analysis.CheckResult{Check: "error-rate", Source: "prometheus", Verdict: analysis.Pass}
	hop := analysis.CheckResult{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: analysis.Inconclusive}
	m.analysed("shop", "checkout", now, analysis.Result{Verdict: analysis.Inconclusive, Checks: []analysis.CheckResult{errRate, hop}})
	got := series(t, reg, "serin_analysis_check_verdict")
	if len(got) != 2*len(allVerdicts) || !slices.Contains(got, "check=latency-p99,hop=checkout → payments,namespace=shop,rollout=checkout,source=jaeger,verdict=Inconclusive 1") ||
		!slices.Contains(got, "check=error-rate,hop=,namespace=shop,rollout=checkout,source=prometheus,verdict=Fail 0") {
		t.Errorf("verdicts = %v", got)
	}
	errRate.Verdict = analysis.Fail
	m.analysed("shop", "checkout", now, analysis.Result{Verdict: analysis.Fail, Checks: []analysis.CheckResult{errRate}})
	got = series(t, reg, "serin_analysis_check_verdict")
	if len(got) != len(allVerdicts) || !slices.Contains(got, "check=error-rate,hop=,namespace=shop,rollout=checkout,source=prometheus,verdict=Fail 1") {
		t.Errorf("after the hop check went away and error-rate failed: %v", got)
	}
	if got := series(t, reg, "serin_analysis_ticks_total"); !slices.Contains(got, "verdict=Fail 1") || !slices.Contains(got, "verdict=Pass 0") {
		t.Errorf("ticks = %v, want one Fail, Pass at 0", got)
	}

	// A rollback keeps the verdicts that explain it; a success drops them.
	m.observed(metricsRollout(v1alpha1.PhaseRolledBack, 1, 0))
	if got := series(t, reg, "serin_analysis_check_verdict"); len(got) != len(allVerdicts) {
		t.Errorf("verdicts after a rollback = %v, want the failing check's kept", got)
	}
	m.observed(metricsRollout(v1alpha1.PhaseSucceeded, 3, 100))
	if got := series(t, reg, "serin_analysis_check_verdict"); len(got) != 0 {
		t.Errorf("verdicts after a success = %v, want none", got)
	}
}

func TestRollbacksCountedByReasonFromZero(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := newEngineMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := series(t, reg, "serin_rollbacks_total"); len(got) != len(RollbackReasons) || !slices.Contains(got, "reason=stable-slo 0") {
		t.Errorf("rollbacks before any = %v, want every reason at 0", got)
	}
	m.decided(Decision{Rollback: RollbackWindow})
	m.decided(Decision{})
	if got := series(t, reg, "serin_rollbacks_total"); !slices.Contains(got, "reason=window 1") || !slices.Contains(got, "reason=analysis 0") {
		t.Errorf("rollbacks = %v, want one window", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestQueryOutcomes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	qm, err := NewQueryMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := qm.Source("prometheus")
	o.ObserveQuery(time.Millisecond, nil)
	o.ObserveQuery(time.Millisecond, fmt.Errorf("query: %w", context.DeadlineExceeded))
	o.ObserveQuery(time.Millisecond, fmt.Errorf("get: %w", timeoutErr{}))
	o.ObserveQuery(time.Millisecond, errors.New("HTTP 500"))
	qm.Source("jaeger")
	got := series(t, reg, "serin_analysis_queries_total")
	for _, want := range []string{"outcome=success,source=prometheus 1", "outcome=timeout,source=prometheus 2",
		"outcome=error,source=prometheus 1", "outcome=error,source=jaeger 0"} {
		if !slices.Contains(got, want) {
			t.Errorf("queries = %v, want %s", got, want)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "serin_analysis_query_duration_seconds" && len(f.GetMetric()) != 2 {
			t.Errorf("%d duration histograms, want one per source", len(f.GetMetric()))
		}
	}
}

func TestRolloutSeriesGatherNames(t *testing.T) {
	m, err := newEngineMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	for _, name := range []string{"b", "a"} {
		ro := metricsRollout(v1alpha1.PhaseProgressing, 0, 10)
		ro.Name = name
		m.observed(ro)
		m.analysed("shop", name, now, analysis.Result{Verdict: analysis.Pass, Checks: []analysis.CheckResult{
			{Check: "latency-p99", Source: "prometheus", Verdict: analysis.Pass},
			{Check: "error-rate", Source: "prometheus", Verdict: analysis.Fail},
			{Check: "error-rate", Source: "prometheus", Verdict: analysis.Pass}, // the last of a key wins
		}})
	}
	fams := m.series.GatherNames([]string{"serin_rollout_last_analysis_timestamp_seconds", "not_ours"})
	if len(fams) != 1 || fams[0].GetName() != "serin_rollout_last_analysis_timestamp_seconds" {
		t.Fatalf("GatherNames of one family gave %d families: %v", len(fams), fams)
	}
	var got []string
	for _, s := range fams[0].GetMetric() {
		got = append(got, fmt.Sprintf("%s=%s,%s=%s %g", s.GetLabel()[0].GetName(), s.GetLabel()[0].GetValue(),
			s.GetLabel()[1].GetName(), s.GetLabel()[1].GetValue(), s.GetGauge().GetValue()))
	}
	if want := []string{"namespace=shop,rollout=a 1.7e+09", "namespace=shop,rollout=b 1.7e+09"}; !slices.Equal(got, want) {
		t.Errorf("last analysis = %v, want %v (sorted by rollout)", got, want)
	}
	if fams := m.series.GatherNames([]string{"not_ours"}); len(fams) != 0 {
		t.Errorf("a name of no family of ours gave %d families", len(fams))
	}
	all, _ := m.series.Gather()
	var names []string
	for _, f := range all {
		names = append(names, f.GetName())
	}
	if !slices.IsSorted(names) || len(names) != len(seriesFamilies) {
		t.Errorf("families = %v, want all %d, sorted", names, len(seriesFamilies))
	}
	verdicts := series(t, m.series, "serin_analysis_check_verdict")
	if want := "check=error-rate,hop=,namespace=shop,rollout=a,source=prometheus,verdict=Pass 1"; len(verdicts) != 2*2*len(allVerdicts) || verdicts[0] != want {
		t.Errorf("verdicts = %v, want 2 checks of 2 rollouts, the first %q", verdicts, want)
	}

	m.finished("shop", "a")
	if got := series(t, m.series, "serin_rollout_last_analysis_timestamp_seconds"); len(got) != 1 || !strings.Contains(got[0], "rollout=b") {
		t.Errorf("last analysis after a finished = %v, want b's alone", got)
	}
}

// BenchmarkGatherRolloutSeries gathers the series of 1,000 rollouts with
// 16 checks each (51,000 series), and the same series held in GaugeVecs
// of a registry, as they were before RolloutSeries.
func BenchmarkGatherRolloutSeries(b *testing.B) {
	const rollouts, checks = 1000, 16
	m, err := newEngineMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	verdicts := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "v"}, []string{"namespace", "rollout", "check", "hop", "source", "verdict"})
	reg.MustRegister(verdicts)
	res := analysis.Result{Verdict: analysis.Pass}
	for c := range checks {
		res.Checks = append(res.Checks, analysis.CheckResult{Check: fmt.Sprint("check-", c%4), Hop: fmt.Sprint("hop-", c/4), Source: "prometheus", Verdict: analysis.Pass})
	}
	for r := range rollouts {
		ro := metricsRollout(v1alpha1.PhaseProgressing, 1, 25)
		ro.Name = fmt.Sprint("checkout-", r)
		m.observed(ro)
		m.analysed(ro.Namespace, ro.Name, time.Now(), res)
		for _, c := range res.Checks {
			for _, v := range allVerdicts {
				verdicts.WithLabelValues(ro.Namespace, ro.Name, c.Check, c.Hop, c.Source, string(v)).Set(b2f(v == c.Verdict))
			}
		}
	}
	b.Run("RolloutSeries", func(b *testing.B) {
		for b.Loop() {
			m.series.GatherNames(nil)
		}
	})
	b.Run("RolloutSeries/one-family", func(b *testing.B) {
		for b.Loop() {
			m.series.GatherNames([]string{lastTickFamily})
		}
	})
	b.Run("registry/verdicts-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
