package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
)

var t0 = time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)

var testLinks = links{Console: "https://serin.example", Jaeger: "https://jaeger.example"}

// rolledBack is a rollback with one failing hop and one passing check.
func rolledBack() rollout.Event {
	return rollout.Event{Kind: rollout.EventRolledBack, Namespace: "shop", Name: "checkout", Time: t0.Add(1300 * time.Millisecond),
		Weight: 25, Step: 1, Steps: 4, Message: "error-rate on checkout → payments: canary 5.2% > limit 1%",
		Checks: []analysis.CheckResult{
			{Check: "latency-p99", Source: "prometheus", Verdict: analysis.Pass, Canary: 120, Stable: 110, Limit: 500, Unit: "ms", CanaryRequests: 90, StableRequests: 300},
			{Check: "error-rate", Hop: "checkout → payments", Source: "jaeger", Verdict: analysis.Fail, Canary: 5.2, Stable: 0.1, Limit: 1, Unit: "%",
				CanaryRequests: 80, StableRequests: 400, Reason: "error-rate on checkout → payments: 5.2% > 1%", TraceID: "4bf92f3577b34da6"},
		},
		LastPassAt: t0.Add(-8 * time.Second), DetectedAt: t0, CompletedAt: t0.Add(1300 * time.Millisecond)}
}

// The rollback message says, in plain text, everything the issue asks for.
func TestRollbackMessage(t *testing.T) {
	text := build(rolledBack(), testLinks).plain()
	for _, want := range []string{
		"Rolled back: shop/checkout",
		"error-rate on checkout → payments: canary 5.2% vs stable 0.1% (limit 1%)", // check, hop, values, limit, units
		"Canary weight was 25% (step 2/4)",
		"Detected within 8s, rolled back in 1.3s.",
		"https://serin.example/rollouts/shop/checkout",
		"https://jaeger.example/trace/4bf92f3577b34da6",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rollback text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "latency-p99") {
		t.Errorf("a passing check is reported as failed:\n%s", text)
	}
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
			{"text", "canary 5.2% vs stable 0.1% (limit 1%)"},
			{"blocks.0.type", `"header"`},
			{"blocks.0.text.type", `"plain_text"`},
			{"blocks.0.text.text", `"Rolled back: shop/checkout"`},
			{"blocks.1.text.type", `"mrkdwn"`},
			{"blocks.1.text.text", "checkout → payments: canary 5.2% vs stable 0.1% (limit 1%)"},
			{"blocks.1.text.text", "Detected within 8s, rolled back in 1.3s."},
			{"blocks.2.fields.1.text", `*Weight*\n25%`},
			{"blocks.2.fields.4.text", `*Hop*\ncheckout → payments`},
			{"blocks.3.text.text", "<https://serin.example/rollouts/shop/checkout|Open in console>"},
			{"blocks.3.text.text", "<https://jaeger.example/trace/4bf92f3577b34da6|Trace (error-rate on checkout → payments)>"},
		}},
		{TypeDiscord, []check{
			{"content", `"Rolled back: shop/checkout"`},
			{"embeds.0.title", `"Rolled back: shop/checkout"`},
			{"embeds.0.url", `"https://serin.example/rollouts/shop/checkout"`},
			{"embeds.0.color", "14687834"}, // 0xE01E5A
			{"embeds.0.description", "[Trace (error-rate on checkout → payments)](https://jaeger.example/trace/4bf92f3577b34da6)"},
			{"embeds.0.fields.5.name", `"Canary"`},
			{"embeds.0.fields.5.value", `"5.2%"`},
			{"embeds.0.timestamp", `"2026-11-24T14:00:01Z"`},
			{"allowed_mentions.parse", "[]"},
		}},
		{TypeMattermost, []check{
			{"text", `"**Rolled back: shop/checkout**"`},
			{"attachments.0.color", `"#E01E5A"`},
			{"attachments.0.title_link", `"https://serin.example/rollouts/shop/checkout"`},
			{"attachments.0.fallback", "rolled back in 1.3s"},
			{"attachments.0.text", "canary 5.2% vs stable 0.1% (limit 1%)"},
			{"attachments.0.fields.7.title", `"Limit"`},
			{"attachments.0.fields.7.value", `"1%"`},
		}},
		{TypeTeams, []check{
			{"type", `"message"`},
			{"attachments.0.contentType", `"application/vnd.microsoft.card.adaptive"`},
			{"attachments.0.contentUrl", "null"},
			{"attachments.0.content.type", `"AdaptiveCard"`},
			{"attachments.0.content.version", `"1.4"`},
			{"attachments.0.content.body.0.text", `"Rolled back: shop/checkout"`},
			{"attachments.0.content.body.0.color", `"Attention"`},
			{"attachments.0.content.body.3.type", `"RichTextBlock"`},
			{"attachments.0.content.body.3.inlines.0.type", `"TextRun"`},
			{"attachments.0.content.body.3.inlines.0.text", "Detected within 8s"},
			{"attachments.0.content.body.5.type", `"FactSet"`},
			{"attachments.0.content.body.5.facts.6.value", `"0.1%"`},
			{"attachments.0.content.actions.0.type", `"Action.OpenUrl"`},
			{"attachments.0.content.actions.1.url", `"https://jaeger.example/trace/4bf92f3577b34da6"`},
		}},
		{TypeWebhook, []check{
			{"version", `"v1"`},
			{"kind", `"RolledBack"`},
			{"rollout.namespace", `"shop"`},
			{"sentAt", fmt.Sprint(t0.Unix())},
			{"weight", "25"},
			{"checks.0.check", `"error-rate"`},
			{"checks.0.hop", `"checkout → payments"`},
			{"checks.0.canary", "5.2"},
			{"checks.0.limit", "1"},
			{"checks.0.unit", `"%"`},
			{"checks.0.traceURL", `"https://jaeger.example/trace/4bf92f3577b34da6"`},
			{"detectionSeconds", "8"},
			{"rollbackSeconds", "1.3"},
			{"consoleURL", `"https://serin.example/rollouts/shop/checkout"`},
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
	if len(p.Checks) != 1 || p.ID == "" || p.DetectedAt == nil || !p.DetectedAt.Equal(t0) {
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
