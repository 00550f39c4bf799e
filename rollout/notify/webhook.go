package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// WebhookPayload is the body of a generic webhook delivery, version "v1".
// It is JSON, sent with these headers:
//
//	Content-Type:      application/json
//	X-Serin-Event:     the event kind, e.g. RolledBack
//	X-Serin-Delivery:  the payload's id (the same on every retry)
//	X-Serin-Timestamp: the send time, Unix seconds (equal to sentAt)
//	X-Serin-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the channel's secret>
//
// To verify: compute HMAC-SHA256 over the exact bytes received with the
// shared key, compare it in constant time with the hex after "sha256=",
// then reject a sentAt more than a few minutes old (the timestamp is in the
// signed body, so it cannot be replayed with a new one). A delivery can be
// retried after a timeout the receiver did not see as one: deduplicate on
// id. Fields may be added in v1; none will be removed or change meaning.
type WebhookPayload struct {
	// Version of this schema: "v1".
	Version string `json:"version"`
	// ID identifies the event (EventID): the same for a decision sent
	// again, so receivers can deduplicate on it.
	ID string `json:"id"`
	// Kind is Started, StepAdvanced, Paused, Resumed, Succeeded,
	// RolledBack, Aborted, Failed, Retried or Warning.
	Kind    string         `json:"kind"`
	Rollout WebhookRollout `json:"rollout"`
	// Time is when the event happened (RFC 3339); SentAt when this
	// delivery was sent (Unix seconds, equal to X-Serin-Timestamp).
	Time   time.Time `json:"time"`
	SentAt int64     `json:"sentAt"`
	// Weight is the canary weight in percent; Step the step index.
	Weight int32 `json:"weight"`
	Step   int32 `json:"step"`
	// Message is the engine's explanation; By who asked (promote, abort,
	// retry, a release). Title and Text are the human rendering other channels show.
	Message string `json:"message,omitempty"`
	By      string `json:"by,omitempty"`
	Title   string `json:"title"`
	Text    string `json:"text"`
	// Checks are the failed checks of a rollback.
	Checks []WebhookCheck `json:"checks,omitempty"`
	// LastPassAt, DetectedAt and CompletedAt time a rollback;
	// DetectionSeconds is DetectedAt-LastPassAt and RollbackSeconds
	// CompletedAt-DetectedAt. Absent when unknown.
	LastPassAt       *time.Time `json:"lastPassAt,omitempty"`
	DetectedAt       *time.Time `json:"detectedAt,omitempty"`
	CompletedAt      *time.Time `json:"completedAt,omitempty"`
	DetectionSeconds *float64   `json:"detectionSeconds,omitempty"`
	RollbackSeconds  *float64   `json:"rollbackSeconds,omitempty"`
	// ConsoleURL links to the rollout in the console, when configured.
	ConsoleURL string `json:"consoleURL,omitempty"`
	// RunbookURL is the Rollout's runbook (spec.notifications.runbook),
	// for the events that need one: a rollback, an abort, a failure, a
	// pause or a warning.
	RunbookURL string `json:"runbookURL,omitempty"`
	// DataPlane is what the proxies carried of a rollback, when the
	// controller reads istiod.
	DataPlane *WebhookDataPlane `json:"dataPlane,omitempty"`
}

// WebhookDataPlane is a rollback as the proxies saw it.
type WebhookDataPlane struct {
	// Proxies is how many connected proxies route the service.
	Proxies int `json:"proxies"`
	// ConfirmedAt is when they all had 100/0, and SecondsAfterDecision
	// how long after the rollback's decision; absent when they did not
	// within the bound.
	ConfirmedAt          *time.Time `json:"confirmedAt,omitempty"`
	SecondsAfterDecision *float64   `json:"secondsAfterDecision,omitempty"`
	// Stragglers name the proxies that lagged, and Reason why.
	Stragglers []string `json:"stragglers,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// WebhookRollout names the rollout.
type WebhookRollout struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// WebhookCheck is one failed check. Canary, Stable and Limit are in Unit
// ("%" or "ms"); Hop is empty for the canary's inbound traffic. Since is
// the start of the window it counted (every request since the analysis
// began), absent for custom checks; TimesLimit is canary over limit when
// the canary is above it. Summary is the check said for people, as the
// chat formats show it.
type WebhookCheck struct {
	Check          string     `json:"check"`
	Hop            string     `json:"hop,omitempty"`
	Source         string     `json:"source"`
	Verdict        string     `json:"verdict"`
	Canary         float64    `json:"canary"`
	Stable         float64    `json:"stable"`
	Limit          float64    `json:"limit"`
	Unit           string     `json:"unit"`
	CanaryRequests float64    `json:"canaryRequests"`
	StableRequests float64    `json:"stableRequests"`
	Reason         string     `json:"reason"`
	TraceID        string     `json:"traceID,omitempty"`
	TraceURL       string     `json:"traceURL,omitempty"`
	Since          *time.Time `json:"since,omitempty"`
	TimesLimit     float64    `json:"timesLimit,omitempty"`
	Summary        string     `json:"summary"`
}

func webhookPayload(m message, now time.Time) WebhookPayload {
	ev := m.Event
	p := WebhookPayload{Version: "v1", ID: m.ID, Kind: string(ev.Kind),
		Rollout: WebhookRollout{ev.Namespace, ev.Name}, Time: ev.Time, SentAt: now.Unix(),
		Weight: ev.Weight, Step: ev.Step, Message: ev.Message, By: ev.By,
		Title: m.Title, Text: m.plain(), LastPassAt: timePtr(ev.LastPassAt),
		DetectedAt: timePtr(ev.DetectedAt), CompletedAt: timePtr(ev.CompletedAt)}
	if m.Detection != 0 {
		p.DetectionSeconds = ptr(m.Detection.Seconds())
	}
	if m.Rollback != 0 {
		p.RollbackSeconds = ptr(m.Rollback.Seconds())
	}
	p.ConsoleURL, p.RunbookURL = m.console(), m.runbook()
	if dp := ev.DataPlane; dp != nil {
		p.DataPlane = &WebhookDataPlane{Proxies: dp.Proxies, ConfirmedAt: timePtr(dp.ConfirmedAt), Stragglers: dp.Stragglers, Reason: dp.Why}
		if !dp.ConfirmedAt.IsZero() {
			p.DataPlane.SecondsAfterDecision = ptr(dp.AfterDecision.Seconds())
		}
	}
	for _, c := range m.Failed {
		p.Checks = append(p.Checks, WebhookCheck{Check: c.Check, Hop: c.Hop, Source: c.Source,
			Verdict: string(c.Verdict), Canary: c.Canary, Stable: c.Stable, Limit: c.Limit, Unit: c.Unit,
			CanaryRequests: c.CanaryRequests, StableRequests: c.StableRequests, Reason: c.Reason,
			TraceID: c.TraceID, TraceURL: c.TraceURL, Since: timePtr(c.Since), TimesLimit: c.TimesLimit(), Summary: c.Text})
	}
	return p
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func ptr[T any](v T) *T { return &v }

// Sign returns the X-Serin-Signature value of body under key:
// "sha256=" and the hex HMAC-SHA256. Receivers can use it to verify.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether sig is the signature of body under key, in
// constant time.
func Verify(key, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(key, body)), []byte(sig))
}

func unixHeader(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
