package notify

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
)

var t0 = time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)

var testLinks = links{Console: "https://serin.example", Jaeger: "https://jaeger.example"}

// rolledBack is a rollback with one hop failing from metrics and from
// traces, and one passing check, on a rollout that names a runbook.
func rolledBack() rollout.Event {
	since := t0.Add(-42 * time.Second)
	return rollout.Event{Kind: rollout.EventRolledBack, Namespace: "shop", Name: "checkout", Time: t0.Add(1300 * time.Millisecond),
		Weight: 25, Step: 1, Steps: 4, Runbook: "https://wiki.example/checkout/canary",
		Message: "rolled back: error-rate on checkout → payments: 5.2% > 1%; error-rate on checkout → payments (traces): 6.1% > 1%; traffic returned to stable (100/0)",
		Checks: []analysis.CheckResult{
			{Check: "latency-p99", Kind: analysis.KindLatency, Source: "prometheus", Verdict: analysis.Pass, Canary: 120, Stable: 110, Limit: 500, Unit: "ms",
				CanaryRequests: 90, StableRequests: 300, Since: since},
			{Check: "error-rate", Kind: analysis.KindErrorRate, Hop: "checkout → payments", Source: "prometheus", Verdict: analysis.Fail,
				Canary: 5.2, CanaryLow: 3.1, CanaryHigh: 8.4, Stable: 0.1, Limit: 1, Unit: "%", CanaryRequests: 800, StableRequests: 4000,
				Evidence: 240, Threshold: 200, EvidenceAtSeconds: 31, Reason: "error-rate on checkout → payments: 5.2% > 1%", Since: since},
			{Check: "error-rate", Kind: analysis.KindErrorRate, Hop: "checkout → payments", Source: "jaeger", Verdict: analysis.Fail,
				Canary: 6.1, Stable: 0.2, Limit: 1, Unit: "%", CanaryRequests: 80, StableRequests: 400,
				Reason: "error-rate on checkout → payments (traces): 6.1% > 1%", TraceID: "4bf92f3577b34da6", Since: since},
		},
		LastPassAt: t0.Add(-8 * time.Second), DetectedAt: t0, CompletedAt: t0.Add(1300 * time.Millisecond)}
}

// The two failures of rolledBack, as every format says them.
const (
	metricsFailure = "error-rate on checkout → payments from metrics, since the analysis began, 43 s of data: " +
		"canary 5.2% [3.1–8.4%] vs stable 0.1%, limit 1% (×5.2 the limit); evidence 1/α reached at 31 s"
	tracesFailure = "error-rate on checkout → payments from traces, since the analysis began, 43 s of data: " +
		"canary 6.1% vs stable 0.2%, limit 1% (×6.1 the limit)"
)

// The rollback message says, in plain text, everything the issue asks
// for, each failure once and the engine's joined reason not again.
func TestRollbackMessage(t *testing.T) {
	text := build(rolledBack(), testLinks).plain()
	for _, want := range []string{
		"Rolled back: shop/checkout",
		"Failed: " + metricsFailure,
		"Failed: " + tracesFailure,
		"Canary weight was 25% (step 2/4)",
		"Detected within 8s, rolled back in 1.3s.",
		"Open in console: https://serin.example/rollouts/shop/checkout",
		"Trace (error-rate on checkout → payments from traces): https://jaeger.example/trace/4bf92f3577b34da6",
		"Runbook: https://wiki.example/checkout/canary",
	} {
		if n := strings.Count(text, want); n != 1 {
			t.Errorf("rollback text has %q %d times, want once:\n%s", want, n, text)
		}
	}
	for _, unwanted := range []string{"latency-p99", "traffic returned to stable", "5.2% > 1%"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("rollback text has %q (a passing check, or the engine's joined reason again):\n%s", unwanted, text)
		}
	}
}

// A rollback without failed checks (no data, a window closed) says the
// engine's reason, which is then all there is.
func TestRollbackWithoutFailedChecks(t *testing.T) {
	ev := rolledBack()
	ev.Checks, ev.Message = nil, "analysis inconclusive with no data for 1m0s; traffic returned to stable (100/0)"
	text := build(ev, testLinks).plain()
	if !strings.Contains(text, ev.Message) || strings.Contains(text, "when the analysis failed") || strings.Contains(text, "Failed:") {
		t.Errorf("rollback without failed checks:\n%s", text)
	}
}

// Each failure is listed once, even when the event carries it twice.
func TestFailedChecksOnce(t *testing.T) {
	ev := rolledBack()
	ev.Checks = append(ev.Checks, ev.Checks[1])
	if m := build(ev, testLinks); len(m.Failed) != 2 || strings.Count(m.plain(), "from metrics") != 1 {
		t.Errorf("failed %d checks, text:\n%s", len(m.Failed), m.plain())
	}
}

// The runbook is linked where someone has something to do, and only a
// well-formed http(s) URL is linked, with what could end the link encoded.
func TestRunbookLink(t *testing.T) {
	for _, tc := range []struct {
		kind    rollout.EventKind
		runbook string
		want    string
	}{
		{rollout.EventAborted, "https://wiki.example/run", "https://wiki.example/run"},
		{rollout.EventFailed, "http://wiki.example/a b)(c|d>[e]", "http://wiki.example/a%20b%29%28c%7Cd%3E%5Be%5D"},
		{rollout.EventPaused, "https://user:pw@wiki.example/x?q=1&r=2#top", "https://wiki.example/x?q=1&r=2#top"},
		{rollout.EventSucceeded, "https://wiki.example/run", ""},
		{rollout.EventAborted, "javascript:alert(1)", ""},
		{rollout.EventAborted, "https:///no-host", ""},
		{rollout.EventAborted, "", ""},
	} {
		m := build(rollout.Event{Kind: tc.kind, Namespace: "shop", Name: "checkout", Runbook: tc.runbook}, links{})
		if got := m.runbook(); got != tc.want {
			t.Errorf("%s with runbook %q: link %q, want %q", tc.kind, tc.runbook, got, tc.want)
		}
	}
}

// A retry says who asked.
func TestRetriedMessage(t *testing.T) {
	m := build(rollout.Event{Kind: rollout.EventRetried, Namespace: "shop", Name: "checkout", Steps: 4, Step: -1, By: "olga",
		Message: "retried by olga after RolledBack; starting again from the first step after a fresh preflight"}, testLinks)
	text := m.plain()
	for _, want := range []string{"Rollout retried: shop/checkout", "Retried by olga", "starting again from the first step"} {
		if !strings.Contains(text, want) {
			t.Errorf("retry text lacks %q:\n%s", want, text)
		}
	}
	if m.Severity != sevInfo || m.Fields[2].Value != "0/4" {
		t.Errorf("severity %v, step %q: want info and 0/4", m.Severity, m.Fields[2].Value)
	}
}

// Each format's rollback message, in testdata/golden (go test -update
// rewrites them): each failure appears exactly once, with its window and
// source, and the runbook is linked.
func TestRollbackGolden(t *testing.T) {
	m := build(rolledBack(), testLinks)
	for _, typ := range []Type{TypeSlack, TypeDiscord, TypeMattermost, TypeTeams, TypeWebhook} {
		t.Run(string(typ), func(t *testing.T) {
			body, err := render(typ, m, t0)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "golden", string(typ)+"-rollback.json"), body)
			var doc any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			// The chat formats say the text once, plus a plain-text
			// fallback (Slack's text, Mattermost's fallback) that the
			// client shows instead of it, never beside it; the webhook
			// carries its text and each check's summary.
			var shown, fallback []string
			strs(doc, "", func(path, s string) {
				switch {
				case typ == TypeSlack && path == ".text", typ == TypeMattermost && strings.HasSuffix(path, ".fallback"),
					typ == TypeWebhook && path == ".text":
					fallback = append(fallback, s)
				case typ == TypeWebhook && path != ".checks.*.summary":
				default:
					shown = append(shown, s)
				}
			})
			for _, texts := range [][]string{shown, fallback} {
				if len(texts) == 0 {
					continue
				}
				all := strings.Join(texts, "\n")
				for _, f := range []string{"error-rate on checkout → payments from metrics, since the analysis began, 43 s of data",
					"error-rate on checkout → payments from traces, since the analysis began, 43 s of data"} {
					if n := strings.Count(unescape(all), f); n != 1 {
						t.Errorf("%q appears %d times, want once:\n%s", f, n, all)
					}
				}
				if strings.Contains(all, "latency-p99") {
					t.Errorf("the passing check is shown:\n%s", all)
				}
			}
			if !strings.Contains(string(body), "https://wiki.example/checkout/canary") {
				t.Errorf("no runbook link: %s", body)
			}
		})
	}
}

// unescape drops the backslashes of Markdown escapes and Slack's
// entities, to find plain text in a rendered payload.
func unescape(s string) string {
	s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
	return regexp.MustCompile(`\\(.)`).ReplaceAllString(s, "$1")
}

func TestOtherEvents(t *testing.T) {
	ev := func(k rollout.EventKind, msg, by string) rollout.Event {
		return rollout.Event{Kind: k, Namespace: "shop", Name: "checkout", Weight: 50, Step: 2, Message: msg, By: by}
	}
	cases := []struct {
		ev   rollout.Event
		want []string
	}{
		{ev(rollout.EventStarted, "started", ""), []string{"Rollout started: shop/checkout"}},
		{ev(rollout.EventStepAdvanced, "step 2", ""), []string{"Rollout advanced: shop/checkout to 50%"}},
		{ev(rollout.EventPaused, "weights changed by someone else (drift)", ""), []string{"Rollout paused", "Reason: weights changed by someone else (drift)"}},
		{ev(rollout.EventPaused, "paused by request", "alice"), []string{"Paused by alice"}},
		{ev(rollout.EventSucceeded, "promoted", "bob"), []string{"Rollout succeeded", "Promoted by bob"}},
		{ev(rollout.EventAborted, "bad build", "carol@example.com"), []string{"Rollout aborted", "bad build", "Aborted by carol@example.com"}},
		{ev(rollout.EventFailed, "DestinationRule shop/checkout has no subset canary", ""), []string{"Rollout failed", "Preflight: DestinationRule shop/checkout has no subset canary"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.ev.Kind), func(t *testing.T) {
			m := build(tc.ev, links{})
			text := m.plain()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q lacks %q", text, w)
				}
			}
			if len(m.Links) != 0 {
				t.Errorf("links without a console URL: %v", m.Links)
			}
		})
	}
}

// jsonPath walks a decoded JSON document: "blocks.0.text.text".
func jsonPath(t *testing.T, doc any, path string) any {
	t.Helper()
	cur := doc
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(c) {
				t.Fatalf("%s: no index %s", path, p)
			}
			cur = c[i]
		default:
			t.Fatalf("%s: cannot index %T with %s", path, cur, p)
		}
	}
	return cur
}

func TestFormats(t *testing.T) {
	m := build(rolledBack(), testLinks)
	type check struct{ path, want string } // want: substring of the value's JSON
	cases := []struct {
		typ    Type
		checks []check
	}{
		{TypeSlack, []check{
			{"text", "Rolled back: shop/checkout"},
			{"text", tracesFailure},
			{"blocks.0.type", `"header"`},
			{"blocks.0.text.type", `"plain_text"`},
			{"blocks.0.text.text", `"Rolled back: shop/checkout"`},
			{"blocks.1.text.type", `"mrkdwn"`},
			{"blocks.1.text.text", metricsFailure},
			{"blocks.1.text.text", "Detected within 8s, rolled back in 1.3s."},
			{"blocks.2.fields.1.text", `*Weight*\n25%`},
			{"blocks.2.fields.2.text", `*Step*\n2/4`},
			{"blocks.2.fields.3.text", `*Failed checks*\n2`},
			{"blocks.3.text.text", "<https://serin.example/rollouts/shop/checkout|Open in console>"},
			{"blocks.3.text.text", "<https://jaeger.example/trace/4bf92f3577b34da6|Trace (error-rate on checkout → payments from traces)>"},
			{"blocks.3.text.text", "<https://wiki.example/checkout/canary|Runbook>"},
		}},
		{TypeDiscord, []check{
			{"content", `"Rolled back: shop/checkout"`},
			{"embeds.0.title", `"Rolled back: shop/checkout"`},
			{"embeds.0.url", `"https://serin.example/rollouts/shop/checkout"`},
			{"embeds.0.color", "14687834"}, // 0xE01E5A
			{"embeds.0.description", "[Trace (error-rate on checkout → payments from traces)](https://jaeger.example/trace/4bf92f3577b34da6)"},
			{"embeds.0.description", "[Runbook](https://wiki.example/checkout/canary)"},
			{"embeds.0.description", `canary 5.2% \\[3.1–8.4%\\] vs stable 0.1%, limit 1% (×5.2 the limit)`},
			{"embeds.0.fields.3.name", `"Failed checks"`},
			{"embeds.0.fields.3.value", `"2"`},
			{"embeds.0.timestamp", `"2026-11-24T14:00:01Z"`},
			{"allowed_mentions.parse", "[]"},
		}},
		{TypeMattermost, []check{
			{"text", `"**Rolled back: shop/checkout**"`},
			{"attachments.0.color", `"#E01E5A"`},
			{"attachments.0.title_link", `"https://serin.example/rollouts/shop/checkout"`},
			{"attachments.0.fallback", "rolled back in 1.3s"},
			{"attachments.0.text", tracesFailure},
			{"attachments.0.fields.2.title", `"Step"`},
			{"attachments.0.fields.2.value", `"2/4"`},
		}},
		{TypeTeams, []check{
			{"type", `"message"`},
			{"attachments.0.contentType", `"application/vnd.microsoft.card.adaptive"`},
			{"attachments.0.contentUrl", "null"},
			{"attachments.0.content.type", `"AdaptiveCard"`},
			{"attachments.0.content.version", `"1.4"`},
			{"attachments.0.content.body.0.text", `"Rolled back: shop/checkout"`},
			{"attachments.0.content.body.0.color", `"Attention"`},
			{"attachments.0.content.body.2.type", `"RichTextBlock"`},
			{"attachments.0.content.body.2.inlines.0.type", `"TextRun"`},
			{"attachments.0.content.body.2.inlines.0.text", "Failed: " + metricsFailure},
			{"attachments.0.content.body.3.inlines.0.text", "Failed: " + tracesFailure},
			{"attachments.0.content.body.4.inlines.0.text", "Detected within 8s"},
			{"attachments.0.content.body.5.type", `"FactSet"`},
			{"attachments.0.content.body.5.facts.2.value", `"2/4"`},
			{"attachments.0.content.actions.0.type", `"Action.OpenUrl"`},
			{"attachments.0.content.actions.1.url", `"https://jaeger.example/trace/4bf92f3577b34da6"`},
			{"attachments.0.content.actions.2.url", `"https://wiki.example/checkout/canary"`},
		}},
		{TypeWebhook, []check{
			{"version", `"v1"`},
			{"kind", `"RolledBack"`},
			{"rollout.namespace", `"shop"`},
			{"sentAt", fmt.Sprint(t0.Unix())},
			{"weight", "25"},
			{"checks.0.check", `"error-rate"`},
			{"checks.0.hop", `"checkout → payments"`},
			{"checks.0.source", `"prometheus"`},
			{"checks.0.canary", "5.2"},
			{"checks.0.limit", "1"},
			{"checks.0.unit", `"%"`},
			{"checks.0.since", `"2026-11-24T13:59:18Z"`},
			{"checks.0.timesLimit", "5.2"},
			{"checks.0.summary", metricsFailure},
			{"checks.1.source", `"jaeger"`},
			{"checks.1.traceURL", `"https://jaeger.example/trace/4bf92f3577b34da6"`},
			{"detectionSeconds", "8"},
			{"rollbackSeconds", "1.3"},
			{"consoleURL", `"https://serin.example/rollouts/shop/checkout"`},
			{"runbookURL", `"https://wiki.example/checkout/canary"`},
		}},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ), func(t *testing.T) {
			body, err := render(tc.typ, m, t0)
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			for _, c := range tc.checks {
				got, _ := json.Marshal(jsonPath(t, doc, c.path))
				if !strings.Contains(string(got), c.want) && !strings.Contains(fmt.Sprint(jsonPath(t, doc, c.path)), c.want) {
					t.Errorf("%s = %s, want it to contain %s", c.path, got, c.want)
				}
			}
		})
	}
}

func TestWebhookSchemaHasNoUnknowns(t *testing.T) {
	body, err := render(TypeWebhook, build(rolledBack(), testLinks), t0)
	if err != nil {
		t.Fatal(err)
	}
	var p WebhookPayload
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		t.Fatalf("payload does not match the documented WebhookPayload: %v", err)
	}
	if len(p.Checks) != 2 || p.ID == "" || p.DetectedAt == nil || !p.DetectedAt.Equal(t0) {
		t.Errorf("payload = %+v", p)
	}
}

func TestSlackEscapes(t *testing.T) {
	ev := rollout.Event{Kind: rollout.EventAborted, Namespace: "a", Name: "b", Message: "p99 <500ms & rising", By: "<!channel>"}
	body, _ := render(TypeSlack, build(ev, links{}), t0)
	var doc slackMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{doc.Text, doc.Blocks[1].Text.Text} {
		if strings.Contains(s, "<!channel>") || !strings.Contains(s, "&lt;!channel&gt;") || !strings.Contains(s, "&amp; rising") {
			t.Errorf("mrkdwn not escaped: %s", s)
		}
	}
}

func TestValueAndDuration(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{analysis.FormatValue(5.2, "%"), "5.2%"}, {analysis.FormatValue(812, "ms"), "812 ms"}, {analysis.FormatValue(0.12345, ""), "0.123"}, {analysis.FormatValue(1, "%"), "1%"},
		{duration(850 * time.Millisecond), "850ms"}, {duration(1340 * time.Millisecond), "1.3s"}, {duration(125*time.Second + 400*time.Millisecond), "2m5s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
