// Command gen writes serin's Grafana dashboard, deploy/grafana/serin.json,
// from Go with the Grafana Foundation SDK: `make dashboards` runs it, and
// TestCommittedDashboardIsGenerated fails when the committed JSON is not
// what it writes. Every panel queries the controller's own metrics (see
// rollout/metrics.go and rollout/notify/metrics.go); test/e2e's
// TestDashboardQueriesReturnData runs each panel's query against a real
// Prometheus scraping a real controller and fails on a panel that finds
// nothing.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

func main() { os.Exit(run()) }

func run() int {
	out := flag.String("o", "deploy/grafana/serin.json", "file to write the dashboard to")
	flag.Parse()
	b, err := render()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		return 1
	}
	return 0
}

// render returns the dashboard as indented JSON with a final newline.
func render() ([]byte, error) {
	d, err := build().Build()
	if err != nil {
		return nil, fmt.Errorf("build the dashboard: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // PromQL's =~ and > stay readable
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode the dashboard: %w", err)
	}
	return buf.Bytes(), nil
}

// ds is every panel's data source: the dashboard's datasource variable.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// ns selects the namespaces chosen in the namespace variable.
const ns = `namespace=~"$namespace"`

func build() *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder("serin").
		Uid("serin-controller").
		Description("serin's canary rollouts: phases, weights, analysis verdicts and queries, rollbacks and notifications, from the controller's /metrics.").
		Tags([]string{"serin", "canary", "istio"}).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("namespace").Label("Namespace").
			Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(serin_rollout_info, namespace)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*")).
		WithRow(dashboard.NewRowBuilder("Rollouts")).
		WithPanel(series("Rollouts by phase", "How many Rollouts are in each phase.", "short",
			target(`sum by (phase) (serin_rollout_phase{`+ns+`})`, "{{phase}}")).Stacking(stacked())).
		WithPanel(series("Canary weight", "The canary weight last confirmed on each Rollout's route.", "percent",
			target(`max by (namespace, rollout) (serin_rollout_canary_weight{`+ns+`})`, "{{namespace}}/{{rollout}}")).Min(0).Max(100)).
		WithPanel(series("Step", "Each Rollout's current step (index into spec.steps; -1 before the first).", "short",
			target(`max by (namespace, rollout) (serin_rollout_step{`+ns+`})`, "{{namespace}}/{{rollout}}"))).
		WithRow(dashboard.NewRowBuilder("Analysis")).
		WithPanel(series("Failing checks", "Checks whose latest verdict is Fail, per rollout; a rolled-back rollout keeps the verdicts that rolled it back.", "short",
			target(`max by (namespace, rollout, check, hop, source) (serin_analysis_check_verdict{`+ns+`, verdict="Fail"}) == 1`,
				"{{namespace}}/{{rollout}} {{check}} {{hop}} ({{source}})"))).
		WithPanel(series("Check verdicts", "How many checks have each verdict in their rollout's latest tick.", "short",
			target(`sum by (verdict) (serin_analysis_check_verdict{`+ns+`})`, "{{verdict}}")).Stacking(stacked())).
		WithPanel(series("Seconds since the last analysis tick", "Per rollout in progress; a rising line is a rollout whose ticks stopped.", "s",
			target(`time() - max by (namespace, rollout) (serin_rollout_last_analysis_timestamp_seconds{`+ns+`})`, "{{namespace}}/{{rollout}}"))).
		WithPanel(series("Analysis ticks by verdict", "Ticks per second, all rollouts together.", "ops",
			target(`sum by (verdict) (rate(serin_analysis_ticks_total[$__rate_interval]))`, "{{verdict}}"))).
		WithPanel(series("Queries per tick", "Queries sent to each data source per analysis tick, all rollouts together: the cost of a tick.", "short",
			target(`sum by (source) (rate(serin_analysis_queries_total[$__rate_interval])) / scalar(sum(rate(serin_analysis_ticks_total[$__rate_interval])))`, "{{source}}"))).
		WithPanel(series("Query rate", "Queries per second to each data source, by outcome (success, error, timeout).", "reqps",
			target(`sum by (source, outcome) (rate(serin_analysis_queries_total[$__rate_interval]))`, "{{source}} {{outcome}}"))).
		WithPanel(series("Query duration", "The 50th and 99th percentile of a query's duration, by data source.", "s",
			target(`histogram_quantile(0.5, sum by (source, le) (rate(serin_analysis_query_duration_seconds_bucket[$__rate_interval])))`, "{{source}} p50"),
			target(`histogram_quantile(0.99, sum by (source, le) (rate(serin_analysis_query_duration_seconds_bucket[$__rate_interval])))`, "{{source}} p99"))).
		WithRow(dashboard.NewRowBuilder("Rollbacks")).
		WithPanel(stat.NewPanelBuilder().Title("Rollbacks in range by reason").
			Description("Rollbacks decided in the dashboard's time range, by the kind of cause: analysis, inconclusive, window, stable-slo.").
			Datasource(ds).Span(8).Height(8).Unit("short").
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(target(`sum by (reason) (increase(serin_rollbacks_total[$__range]))`, "{{reason}}").Instant())).
		WithPanel(series("Rollback latency", "From the first failed tick's evidence to the route confirmed back at 100/0 (serin_rollback_detection_to_rollback_seconds), and from the rollback's decision until every proxy had 100/0, with --istiod-url (serin_rollback_dataplane_seconds).", "s",
			target(`histogram_quantile(0.5, sum by (le) (rate(serin_rollback_detection_to_rollback_seconds_bucket[$__rate_interval])))`, "p50"),
			target(`histogram_quantile(0.95, sum by (le) (rate(serin_rollback_detection_to_rollback_seconds_bucket[$__rate_interval])))`, "p95"),
			target(`histogram_quantile(0.99, sum by (le) (rate(serin_rollback_detection_to_rollback_seconds_bucket[$__rate_interval])))`, "p99"),
			target(`histogram_quantile(0.5, sum by (le) (rate(serin_rollback_dataplane_seconds_bucket[$__rate_interval])))`, "p50 in the proxies"),
			target(`histogram_quantile(0.95, sum by (le) (rate(serin_rollback_dataplane_seconds_bucket[$__rate_interval])))`, "p95 in the proxies")).Span(16)).
		WithRow(dashboard.NewRowBuilder("Notifications")).
		WithPanel(series("Notification failures", "Notifications given up (failed) or dropped from a full queue, and attempts retried, per channel.", "short",
			target(`sum by (channel, outcome) (increase(serin_notifications_total{outcome=~"failed|dropped|retried"}[$__rate_interval]))`, "{{channel}} {{outcome}}"))).
		WithPanel(series("Notifications sent", "Notifications delivered per second, per channel.", "ops",
			target(`sum by (channel) (rate(serin_notifications_total{outcome="sent"}[$__rate_interval]))`, "{{channel}}"))).
		WithPanel(series("Notification queue", "Events waiting for each channel, the one being sent included.", "short",
			target(`max by (channel) (serin_notification_queue_length)`, "{{channel}}")))
}

// series is a time series panel of a third of the width.
func series(title, description, unit string, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Datasource(ds).
		Unit(unit).Span(8).Height(8).FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom))
	for _, t := range targets {
		p.WithTarget(t)
	}
	return p
}

func target(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(ds).Expr(expr).LegendFormat(legend)
}

func stacked() *common.StackingConfigBuilder {
	return common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)
}
