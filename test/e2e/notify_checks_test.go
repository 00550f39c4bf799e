package e2e

// Checks of the notification tests: every field of an event message and
// of the rollback message, signed retries, and secrets kept out of sight.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/rollout/notify"
	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// checkEventNote checks what every Slack message of an event says, and
// what each kind adds.
func checkEventNote(t *testing.T, rc *hookReceiver, n slackNote) {
	t.Helper()
	if n.path != rc.path() {
		t.Errorf("%q arrived at %q, not at the URL read from the file", n.title, n.path)
	}
	if ct := n.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%q has Content-Type %q", n.title, ct)
	}
	if !strings.HasPrefix(n.msg.Text, n.title) {
		t.Errorf("the text fallback %q does not start with the title %q", n.msg.Text, n.title)
	}
	if f := n.fields(); f["Rollout"] != n.rollout || !strings.HasSuffix(f["Weight"], "%") {
		t.Errorf("%q: fields %v do not name the rollout and its weight", n.title, f)
	}
	if link := notifyConsoleURL + "/rollouts/" + n.rollout; !strings.Contains(n.msg.Text, link) {
		t.Errorf("%q does not link to %s", n.title, link)
	}
	switch n.kind {
	case rollout.EventStepAdvanced:
		if !strings.Contains(n.title, "to 50%") {
			t.Errorf("the step message %q does not say the new weight", n.title)
		}
	case rollout.EventPaused:
		if !strings.Contains(n.msg.Text, "Reason: paused by request") {
			t.Errorf("the pause message does not give the reason:\n%s", n.msg.Text)
		}
	case rollout.EventAborted:
		if !strings.Contains(n.msg.Text, "Aborted by alice") || !strings.Contains(n.msg.Text, "bad smell") {
			t.Errorf("the abort message does not say who aborted and why:\n%s", n.msg.Text)
		}
	case rollout.EventFailed:
		if !strings.Contains(n.msg.Text, "Preflight: ") || !strings.Contains(n.msg.Text, `"v2"`) {
			t.Errorf("the failure message does not name the missing subset:\n%s", n.msg.Text)
		}
	}
}

// checkFailedChecks checks that the rollback message n says each failed
// check with the status's values, links to each check's trace in Jaeger,
// and shows the first one as fields.
func checkFailedChecks(t *testing.T, n slackNote, failed []v1alpha1.CheckStatus) {
	t.Helper()
	text, f := n.msg.Text, n.fields()
	traced := 0
	for _, c := range failed {
		// Each failure once, named by check, hop and source, with its
		// window, both sides' values with their intervals, the limit,
		// how far over it and the evidence: the status's own figures.
		head := fmt.Sprintf("Failed: %s on %s from %s, since the analysis began, ", c.Check, hopLabel(c.Hop), analysis.SourceName(c.Source))
		if n := strings.Count(text, head); n != 1 {
			t.Errorf("the message says %q %d times, want once:\n%s", head, n, text)
			continue
		}
		_, line, _ := strings.Cut(text, head)
		line, _, _ = strings.Cut(line, "\n")
		limit := "limit " + analysis.FormatValue(c.Limit, c.Unit)
		if x := analysis.FormatTimesLimit(rollout.CheckResultOf(c)); x != "" {
			limit += " (" + x + ")"
		}
		for _, part := range []string{
			"canary " + analysis.FormatWithInterval(c.Canary, c.CanaryLow, c.CanaryHigh, c.Unit),
			"vs stable " + stableLabel(c), limit,
			analysis.FormatEvidence(c.Evidence, c.Threshold, c.EvidenceAtSeconds),
		} {
			if !strings.Contains(line, part) {
				t.Errorf("the failure %q%s lacks %q", head, line, part)
			}
		}
		if !strings.Contains(line, "evidence 1/α reached at") || !strings.Contains(line, "[") || !strings.Contains(line, " s of data") {
			t.Errorf("the failed check %q carries no interval, evidence or window", line)
		}
		if c.Unit != "%" && c.Check == "error-rate" {
			t.Errorf("the error-rate check from %s has unit %q, want %%", c.Source, c.Unit)
		}
		if c.TraceID != "" {
			traced++
			link := st.JaegerQueryURL + "/trace/" + c.TraceID
			if !strings.Contains(text, link) || !strings.Contains(n.blocksText(), "<"+link+"|") {
				t.Errorf("the failed %s check on %s from %s names trace %s, but the message does not link to it", c.Check, hopLabel(c.Hop), c.Source, c.TraceID)
			}
			if code := httpStatus(t, st.JaegerQueryURL+"/api/traces/"+c.TraceID); code != http.StatusOK {
				t.Errorf("the linked trace %s is not in Jaeger: %d", c.TraceID, code)
			}
		}
	}
	t.Logf("%d failed checks, %d from traces with a trace link", len(failed), traced)
	for label, want := range map[string]string{"Weight": "10%", "Failed checks": strconv.Itoa(len(failed))} {
		if f[label] != want {
			t.Errorf("field %s is %q, want %q", label, f[label], want)
		}
	}
}

// checkTimings checks the rollback message's "detected within" against the
// status's ticks (the first failed one minus the last passing one before
// it), and that "rolled back in" is a plausible duration.
func checkTimings(t *testing.T, n slackNote, ro *v1alpha1.Rollout) {
	t.Helper()
	text, f := n.msg.Text, n.fields()
	detected, rolled := durationAfter(t, text, "detected within "), durationAfter(t, text, "rolled back in ")
	if f["Detected within"] == "" || f["Rolled back in"] == "" {
		t.Errorf("the fields %v lack the timings", f)
	}
	if d, ok := detectionOf(ro); ok && (detected < d-time.Second || detected > d+time.Second) {
		t.Errorf("detected within %v, but the status's ticks say %v", detected, d)
	}
	if rolled <= 0 || rolled > 30*time.Second {
		t.Errorf("rolled back in %v: want a positive duration under the test's deadline", rolled)
	}
}

// checkSignedRetry checks that the webhook receiver got the rollback of
// name twice, answering 500 then 200: the same event, signed with key both
// times, after a backoff. It returns the two deliveries.
func checkSignedRetry(t *testing.T, e *env, audit *hookReceiver, key, name string) []hookHit {
	t.Helper()
	hs := audit.got()
	if len(hs) != 2 || hs[0].status != http.StatusInternalServerError || hs[1].status != http.StatusOK {
		t.Fatalf("the webhook got %d deliveries answered %v, want exactly 2: 500 then 200", len(hs), statusesOf(hs))
	}
	for i, h := range hs {
		if h.path != audit.path() {
			t.Errorf("delivery %d arrived at %q, not at the URL read from the file", i+1, h.path)
		}
		if !notify.Verify([]byte(key), h.body, h.header.Get("X-Serin-Signature")) {
			t.Errorf("delivery %d: the signature %q does not verify with the key", i+1, h.header.Get("X-Serin-Signature"))
		}
		var pl notify.WebhookPayload
		must(t, json.Unmarshal(h.body, &pl))
		if pl.Version != "v1" || pl.Kind != string(rollout.EventRolledBack) || pl.Rollout != (notify.WebhookRollout{Namespace: e.ns, Name: name}) ||
			pl.ID != h.header.Get("X-Serin-Delivery") || strconv.FormatInt(pl.SentAt, 10) != h.header.Get("X-Serin-Timestamp") ||
			h.header.Get("X-Serin-Event") != pl.Kind {
			t.Errorf("delivery %d does not match its headers %v:\n%s", i+1, h.header, h.body)
		}
		if pl.Weight != 10 || len(pl.Checks) == 0 || pl.DetectionSeconds == nil || pl.RollbackSeconds == nil ||
			pl.ConsoleURL != notifyConsoleURL+"/rollouts/"+e.ns+"/"+name {
			t.Errorf("delivery %d lacks the rollback's weight, checks, timings or console link:\n%s", i+1, h.body)
		}
	}
	if id0, id1 := hs[0].header.Get("X-Serin-Delivery"), hs[1].header.Get("X-Serin-Delivery"); id0 != id1 {
		t.Errorf("the retry has delivery id %s, the first try %s: want the same event", id1, id0)
	}
	if gap := hs[1].at.Sub(hs[0].at); gap < 900*time.Millisecond {
		t.Errorf("the webhook was retried %v after its 500: want a backoff of about a second at least", gap)
	}
	return hs
}

// assertNoSecrets checks that no secret appears in the controller's log,
// in the API's output for the rollouts, in the Rollouts themselves or in
// the namespace's Kubernetes Events.
func assertNoSecrets(t *testing.T, e *env, p *controllerProc, rollouts []string, secrets map[string]string) {
	t.Helper()
	logb, err := os.ReadFile(p.log)
	must(t, err)
	if !strings.Contains(string(logb), "notification channels loaded") {
		t.Errorf("the controller's log %s does not show the channels loaded: is it the right log?", p.log)
	}
	outputs := map[string]string{"the controller's log": string(logb)}
	base := "http://" + p.addr + "/api/v1/rollouts"
	urls := []string{base + "?namespace=" + e.ns}
	for _, name := range rollouts {
		urls = append(urls, base+"/"+e.ns+"/"+name)
		outputs["Rollout "+name] = jsonOf(t, e.get(name))
	}
	for _, u := range urls {
		code, body := apiCall(t, http.MethodGet, u, notifyAPIToken, nil)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", u, code, body)
		}
		outputs["GET "+u] = body
	}
	var evs corev1.EventList
	must(t, e.c.List(e.ctx, &evs, client.InNamespace(e.ns)))
	outputs["the namespace's Events"] = jsonOf(t, evs.Items)
	outputs["the controller's /metrics"] = httpGet(t, "http://"+p.addr+"/metrics")
	for what, secret := range secrets {
		for where, out := range outputs {
			if strings.Contains(out, secret) {
				t.Errorf("%s appears in %s", what, where)
			}
		}
	}
}

func statusesOf(hs []hookHit) []int {
	var out []int
	for _, h := range hs {
		out = append(out, h.status)
	}
	return out
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// The message's wording of a check, as rollout/notify documents it.

func hopLabel(hop string) string {
	if hop == "" {
		return "inbound traffic"
	}
	return hop
}

func stableLabel(c v1alpha1.CheckStatus) string {
	if c.Stable == 0 && c.StableRequests == 0 {
		return "n/a (no stable traffic)"
	}
	return analysis.FormatWithInterval(c.Stable, c.StableLow, c.StableHigh, c.Unit)
}

// durationAfter reads the Go duration that follows label in text.
func durationAfter(t *testing.T, text, label string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(label) + `([0-9hms.µ]+?)[.,]?(\s|$)`).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("the message does not say %q with a duration:\n%s", label, text)
		return 0
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Errorf("%q%s: %v", label, m[1], err)
	}
	return d
}

// detectionOf is the status's first failed tick minus the last passing one
// before it.
func detectionOf(ro *v1alpha1.Rollout) (time.Duration, bool) {
	a := ro.Status.Analysis
	if a.FirstFailureAt == nil {
		return 0, false
	}
	var last time.Time
	for _, h := range a.History {
		if h.Verdict == "Pass" && h.Time.Time.Before(a.FirstFailureAt.Time) {
			last = h.Time.Time
		}
	}
	if last.IsZero() {
		return 0, false
	}
	return a.FirstFailureAt.Sub(last), true
}
