package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// dashboardRateInterval stands in for Grafana's $__rate_interval: at
// least four of the stack's 1 s scrapes.
const dashboardRateInterval = "30s"

// panelQuery is one query of one panel of the generated dashboard.
type panelQuery struct {
	panel   string
	expr    string
	instant bool
}

// TestDashboardQueriesReturnData runs a rollout that rolls back on the real
// stack, with a notification channel that delivers and one that fails,
// has the real Prometheus scrape the controller's /metrics, then runs
// every query of every panel of deploy/grafana/serin.json against that
// Prometheus, over the test's time range, with Grafana's variables
// replaced by concrete values. A panel without a query, a query Prometheus
// refuses, or one that finds no finite value fails the test: every panel
// must show something for a rollout and its rollback.
func TestDashboardQueriesReturnData(t *testing.T) {
	queries := dashboardQueries(t)
	start := time.Now()
	e := newMeshEnv(t, 50, "")
	chat := newHookReceiver(t, nil)
	pager := newHookReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) int {
		return answer(w, r, http.StatusServiceUnavailable)
	})
	withNotify(e.env,
		notifyChannel{name: "chat", typ: notify.TypeSlack, events: allEvents, rc: chat},
		notifyChannel{name: "pager", typ: notify.TypeSlack, events: []rollout.EventKind{rollout.EventRolledBack}, rc: pager})
	p := e.startController()
	job := "serin-" + e.ns
	must(t, st.SetScrapeTargets(job, []string{p.addr}))
	t.Cleanup(func() { _ = st.SetScrapeTargets(job, nil) })

	e.rollout("dash", analysed(30*time.Second, nil))
	e.breakAfterPass("dash")
	e.waitPhase("dash", v1alpha1.PhaseRolledBack, 90*time.Second)
	// The pager channel is retried three times (1 s, 2 s, 4 s) before it
	// is given up: a real failure for the failures panel.
	e.eventually(30*time.Second, "Prometheus to have scraped the rollback and the failed notification", func() (bool, string) {
		rb, err := promScalar(`sum(serin_rollbacks_total{job="` + job + `",reason="analysis"})`)
		if err != nil {
			return false, err.Error()
		}
		failed, err := promScalar(`sum(serin_notifications_total{job="` + job + `",channel="pager",outcome="failed"})`)
		if err != nil {
			return false, err.Error()
		}
		return rb == 1 && failed >= 1, fmt.Sprintf("rollbacks %v, failed notifications %v", rb, failed)
	})

	end := time.Now()
	vars := strings.NewReplacer(
		"$__rate_interval", dashboardRateInterval,
		"$__interval", "5s",
		"$__range", fmt.Sprintf("%ds", int(math.Ceil(end.Sub(start).Seconds()))),
		"$namespace", regexp.QuoteMeta(e.ns),
	)
	for _, q := range queries {
		expr := vars.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("panel %q: query %q has a variable the test does not know", q.panel, expr)
			continue
		}
		n, err := promFinite(expr, q.instant, start, end)
		switch {
		case err != nil:
			t.Errorf("panel %q: %s: %v", q.panel, expr, err)
		case n == 0:
			t.Errorf("panel %q finds no data: %s", q.panel, expr)
		default:
			t.Logf("panel %q: %d values", q.panel, n)
		}
	}
}

// dashboardQueries reads every panel's queries from the generated
// dashboard, rows' nested panels included, and fails the test for a panel
// that queries nothing.
func dashboardQueries(t *testing.T) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stack.RepoRoot(), "deploy/grafana/serin.json"))
	must(t, err)
	type target struct {
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
	}
	type panel struct {
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	must(t, json.Unmarshal(b, &d))
	var out []panelQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
					continue
				}
				out = append(out, panelQuery{panel: p.Title, expr: tg.Expr, instant: tg.Instant})
			}
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// promAnswer is the part of a Prometheus query answer the test reads.
type promAnswer struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value  []any   `json:"value"`
			Values [][]any `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// promFinite runs expr as a range query from start to end (or an instant
// query at end) and counts the finite values it returns.
func promFinite(expr string, instant bool, start, end time.Time) (int, error) {
	q := url.Values{"query": {expr}}
	path := "/api/v1/query_range"
	if instant {
		path = "/api/v1/query"
		q.Set("time", unixSeconds(end))
	} else {
		q.Set("start", unixSeconds(start))
		q.Set("end", unixSeconds(end))
		q.Set("step", "2s")
	}
	a, err := promGet(path, q)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range a.Data.Result {
		samples := r.Values
		if r.Value != nil {
			samples = append(samples, r.Value)
		}
		for _, s := range samples {
			if len(s) == 2 {
				if v, err := strconv.ParseFloat(fmt.Sprint(s[1]), 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
					n++
				}
			}
		}
	}
	return n, nil
}

// promScalar runs an instant query expected to return one series and
// returns its value; no series is an error.
func promScalar(expr string) (float64, error) {
	a, err := promGet("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	if len(a.Data.Result) != 1 || len(a.Data.Result[0].Value) != 2 {
		return 0, fmt.Errorf("%s: %d series, want one", expr, len(a.Data.Result))
	}
	return strconv.ParseFloat(fmt.Sprint(a.Data.Result[0].Value[1]), 64)
}

func promGet(path string, q url.Values) (promAnswer, error) {
	var a promAnswer
	resp, err := http.Get(st.PrometheusURL + path + "?" + q.Encode())
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return a, fmt.Errorf("decode the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if a.Status != "success" {
		return a, fmt.Errorf("Prometheus: %s", a.Error)
	}
	return a, nil
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}
