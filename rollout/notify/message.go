package notify

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
)

// severity picks a colour.
type severity int

const (
	sevInfo severity = iota
	sevGood
	sevWarn
	sevBad
)

// field is one label/value pair: a Slack section field, a Discord embed
// field, a Teams fact.
type field struct{ Label, Value string }

// link is a labelled URL.
type link struct{ Label, URL string }

// message is what every format renders: the event, said once in plain
// words. Text is plain text, one statement per line; formats add markup.
type message struct {
	Title    string
	Text     []string
	Fields   []field
	Links    []link
	Severity severity
	Event    rollout.Event
	// ID is EventID(Event).
	ID string
	// Failed are the failed checks, with their trace links.
	Failed []checkLine
	// Detection and Rollback are the measured durations; zero if unknown.
	Detection, Rollback time.Duration
}

// checkLine is a failed check, described.
type checkLine struct {
	analysis.CheckResult
	Text     string
	TraceURL string
}

// links are the base URLs the messages link to.
type links struct{ Console, Jaeger string }

func (l links) console(ev rollout.Event) string {
	if l.Console == "" {
		return ""
	}
	return l.Console + "/rollouts/" + url.PathEscape(ev.Namespace) + "/" + url.PathEscape(ev.Name)
}

func (l links) trace(id string) string {
	if l.Jaeger == "" || id == "" {
		return ""
	}
	return l.Jaeger + "/trace/" + url.PathEscape(id)
}

// build describes ev. It is pure.
func build(ev rollout.Event, l links) message {
	ro := ev.Namespace + "/" + ev.Name
	m := message{Event: ev, ID: EventID(ev), Severity: sevInfo}
	switch ev.Kind {
	case rollout.EventStarted:
		m.Title = "Rollout started: " + ro
	case rollout.EventStepAdvanced:
		m.Title = fmt.Sprintf("Rollout advanced: %s to %d%%", ro, ev.Weight)
	case rollout.EventPaused:
		m.Title, m.Severity = "Rollout paused: "+ro, sevWarn
	case rollout.EventResumed:
		m.Title = "Rollout resumed: " + ro
	case rollout.EventSucceeded:
		m.Title, m.Severity = "Rollout succeeded: "+ro, sevGood
	case rollout.EventRolledBack:
		m.Title, m.Severity = "Rolled back: "+ro, sevBad
	case rollout.EventAborted:
		m.Title, m.Severity = "Rollout aborted: "+ro, sevBad
	case rollout.EventFailed:
		m.Title, m.Severity = "Rollout failed: "+ro, sevBad
	default:
		m.Title, m.Severity = fmt.Sprintf("Rollout %s: %s", strings.ToLower(string(ev.Kind)), ro), sevWarn
	}
	if ev.Kind == rollout.EventRolledBack {
		m.rollback(l)
	}
	if ev.Message != "" {
		m.Text = append(m.Text, reasonLabel(ev.Kind)+ev.Message)
	}
	if ev.By != "" {
		m.Text = append(m.Text, byLabel(ev.Kind)+ev.By)
	}
	m.Fields = append([]field{{"Rollout", ro}, {"Weight", fmt.Sprintf("%d%%", ev.Weight)}, {"Step", strconv.Itoa(int(ev.Step))}}, m.Fields...)
	if u := l.console(ev); u != "" {
		m.Links = append([]link{{"Open in console", u}}, m.Links...)
	}
	return m
}

func reasonLabel(k rollout.EventKind) string {
	switch k {
	case rollout.EventPaused:
		return "Reason: "
	case rollout.EventFailed:
		return "Preflight: "
	}
	return ""
}

func byLabel(k rollout.EventKind) string {
	switch k {
	case rollout.EventAborted:
		return "Aborted by "
	case rollout.EventPaused:
		return "Paused by "
	case rollout.EventSucceeded:
		return "Promoted by "
	}
	return "By "
}

// rollback adds what a rollback message must say: the failed checks with
// values and limits, the hop, the weight, how long detection and rollback
// took, and the trace links.
func (m *message) rollback(l links) {
	ev := m.Event
	m.Text = append(m.Text, fmt.Sprintf("Canary weight was %d%% (step %s) when the analysis failed.", ev.Weight, rollout.StepOf(ev.Step, ev.Steps)))
	for _, c := range failedChecks(ev.Checks) {
		cl := checkLine{CheckResult: c, Text: describeCheck(c), TraceURL: l.trace(c.TraceID)}
		m.Failed = append(m.Failed, cl)
		m.Text = append(m.Text, "Failed: "+cl.Text)
		if cl.TraceURL != "" {
			m.Links = append(m.Links, link{"Trace (" + checkName(c) + ")", cl.TraceURL})
		}
	}
	if len(m.Failed) > 0 {
		c := m.Failed[0]
		m.Fields = append(m.Fields, field{"Check", c.Check}, field{"Hop", hopName(c.Hop)},
			field{"Canary", analysis.FormatValue(c.Canary, c.Unit)}, field{"Stable", stableValue(c.CheckResult)},
			field{"Limit", analysis.FormatValue(c.Limit, c.Unit)})
	}
	var timing []string
	if !ev.LastPassAt.IsZero() && !ev.DetectedAt.IsZero() {
		m.Detection = ev.DetectedAt.Sub(ev.LastPassAt)
		timing = append(timing, "detected within "+duration(m.Detection))
		m.Fields = append(m.Fields, field{"Detected within", duration(m.Detection)})
	}
	if !ev.DetectedAt.IsZero() && !ev.CompletedAt.IsZero() {
		m.Rollback = ev.CompletedAt.Sub(ev.DetectedAt)
		timing = append(timing, "rolled back in "+duration(m.Rollback))
		m.Fields = append(m.Fields, field{"Rolled back in", duration(m.Rollback)})
	}
	if len(timing) > 0 {
		s := strings.Join(timing, ", ") + "."
		m.Text = append(m.Text, strings.ToUpper(s[:1])+s[1:])
	}
	if dp := ev.DataPlane; dp != nil {
		line := dataPlaneLine(*dp)
		m.Text = append(m.Text, line)
		m.Fields = append(m.Fields, field{"Data plane", line})
	}
}

// dataPlaneLine says what the proxies carried of a rollback: "Traffic off
// the canary on all 12 proxies 0.8 s after the decision."
func dataPlaneLine(dp rollout.DataPlaneNote) string {
	if !dp.ConfirmedAt.IsZero() {
		all := fmt.Sprintf("all %d proxies", dp.Proxies)
		if dp.Proxies == 1 {
			all = "the only proxy"
		}
		return fmt.Sprintf("Traffic off the canary on %s %s after the decision.", all, duration(dp.AfterDecision))
	}
	if dp.Why != "" {
		return "Traffic off the canary on the VirtualService, but not confirmed on the proxies: " + dp.Why + "."
	}
	return "Traffic off the canary on the VirtualService, but not confirmed on the proxies."
}

// failedChecks returns the checks that failed, or all of them when none is
// marked Fail (the engine may pass only the culprits).
func failedChecks(cs []analysis.CheckResult) []analysis.CheckResult {
	var out []analysis.CheckResult
	for _, c := range cs {
		if c.Verdict == analysis.Fail && !c.DryRun {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return cs
	}
	return out
}

// describeCheck says, e.g., "error-rate on checkout → payments: canary
// 5.2% [3.1–8.4%] vs stable 0.1% [0.05–0.2%] (limit 0.6%), evidence 1/α
// reached at 2.4 s".
func describeCheck(c analysis.CheckResult) string {
	s := fmt.Sprintf("%s: canary %s vs stable %s (limit %s)",
		checkName(c), analysis.FormatWithInterval(c.Canary, c.CanaryLow, c.CanaryHigh, c.Unit), stableValue(c), analysis.FormatValue(c.Limit, c.Unit))
	if e := analysis.FormatEvidence(c.Evidence, c.Threshold, c.EvidenceAtSeconds); e != "" {
		s += ", " + e
	}
	return s
}

func checkName(c analysis.CheckResult) string { return c.Check + " on " + hopName(c.Hop) }

func hopName(h string) string {
	if h == "" {
		return "inbound traffic"
	}
	return h
}

func stableValue(c analysis.CheckResult) string {
	if c.Stable == 0 && c.StableRequests == 0 {
		return "n/a (no stable traffic)"
	}
	return analysis.FormatWithInterval(c.Stable, c.StableLow, c.StableHigh, c.Unit)
}

// duration rounds d for people: "850ms", "1.3s", "2m5s".
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// plain is the message as plain text: the fallback of the rich formats.
func (m message) plain() string {
	var b strings.Builder
	b.WriteString(m.Title)
	for _, t := range m.Text {
		b.WriteString("\n" + t)
	}
	for _, l := range m.Links {
		b.WriteString("\n" + l.Label + ": " + l.URL)
	}
	return b.String()
}
