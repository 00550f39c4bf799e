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

// link is a labelled URL, of a kind that formats tell apart by its
// field, never by its label.
type link struct {
	Kind       linkKind
	Label, URL string
}

// linkKind says what a link opens.
type linkKind int

const (
	linkConsole linkKind = iota + 1
	linkTrace
	linkRunbook
)

// console returns m's console link, or "".
func (m message) console() string {
	for _, l := range m.Links {
		if l.Kind == linkConsole {
			return l.URL
		}
	}
	return ""
}

// runbook returns m's runbook link, or "".
func (m message) runbook() string {
	for _, l := range m.Links {
		if l.Kind == linkRunbook {
			return l.URL
		}
	}
	return ""
}

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
	m.Title, m.Severity = title(ev, ro)
	if ev.Kind == rollout.EventRolledBack {
		m.rollback(l)
	}
	// A rollback that lists its failed checks says each once: the
	// engine's message joins the same reasons.
	if ev.Message != "" && (ev.Kind != rollout.EventRolledBack || len(m.Failed) == 0) {
		m.Text = append(m.Text, reasonLabel(ev.Kind)+ev.Message)
	}
	if ev.By != "" {
		m.Text = append(m.Text, byLabel(ev.Kind)+ev.By)
	}
	m.Fields = append([]field{{"Rollout", ro}, {"Weight", fmt.Sprintf("%d%%", ev.Weight)}, {"Step", stepName(ev)}}, m.Fields...)
	if u := linkURL(l.console(ev)); u != "" {
		m.Links = append([]link{{linkConsole, "Open in console", u}}, m.Links...)
	}
	if u := linkURL(ev.Runbook); u != "" && m.Severity >= sevWarn {
		m.Links = append(m.Links, link{linkRunbook, "Runbook", u})
	}
	return m
}

// title names the event and picks its colour.
func title(ev rollout.Event, ro string) (string, severity) {
	switch ev.Kind {
	case rollout.EventStarted:
		return "Rollout started: " + ro, sevInfo
	case rollout.EventStepAdvanced:
		return fmt.Sprintf("Rollout advanced: %s to %d%%", ro, ev.Weight), sevInfo
	case rollout.EventPaused:
		return "Rollout paused: " + ro, sevWarn
	case rollout.EventResumed:
		return "Rollout resumed: " + ro, sevInfo
	case rollout.EventSucceeded:
		return "Rollout succeeded: " + ro, sevGood
	case rollout.EventRolledBack:
		return "Rolled back: " + ro, sevBad
	case rollout.EventAborted:
		return "Rollout aborted: " + ro, sevBad
	case rollout.EventFailed:
		return "Rollout failed: " + ro, sevBad
	case rollout.EventRetried:
		return "Rollout retried: " + ro, sevInfo
	case rollout.EventReleaseStarted:
		return "Release started: " + ro, sevInfo
	case rollout.EventStableUpdated:
		return "Stable updated: " + ro, sevGood
	case rollout.EventAdopted:
		return "Workload adopted: " + ro, sevInfo
	}
	return fmt.Sprintf("Rollout %s: %s", strings.ToLower(string(ev.Kind)), ro), sevWarn
}

// stepName is the step as every surface shows it, "2/4", when the event
// knows how many steps there are.
func stepName(ev rollout.Event) string {
	if ev.Steps > 0 {
		return rollout.StepOf(ev.Step, ev.Steps)
	}
	return strconv.Itoa(int(ev.Step) + 1)
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
	case rollout.EventRetried:
		return "Retried by "
	case rollout.EventReleaseStarted:
		return "Released by "
	}
	return "By "
}

// rollback adds what a rollback message must say: each failed check once,
// with its hop, source and window, values, limit and how far over it; the
// weight; how long detection and rollback took; and the trace links.
func (m *message) rollback(l links) {
	ev := m.Event
	for _, c := range failedChecks(ev.Checks) {
		m.Failed = append(m.Failed, checkLine{CheckResult: c, Text: c.Summary(ev.Time), TraceURL: linkURL(l.trace(c.TraceID))})
	}
	at := fmt.Sprintf("Canary weight was %d%% (step %s)", ev.Weight, stepName(ev))
	if len(m.Failed) > 0 {
		at += " when the analysis failed"
	}
	m.Text = append(m.Text, at+".")
	for _, cl := range m.Failed {
		m.Text = append(m.Text, "Failed: "+cl.Text)
		if cl.TraceURL != "" {
			m.Links = append(m.Links, link{linkTrace, "Trace (" + checkName(cl.CheckResult) + ")", cl.TraceURL})
		}
	}
	if len(m.Failed) > 0 {
		m.Fields = append(m.Fields, field{"Failed checks", strconv.Itoa(len(m.Failed))})
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

// failedChecks returns the checks that failed, each once (a check is
// its name, kind, hop and source), or all of them when none is marked Fail
// (the engine may pass only the culprits).
func failedChecks(cs []analysis.CheckResult) []analysis.CheckResult {
	var out []analysis.CheckResult
	seen := map[[4]string]bool{}
	for _, c := range cs {
		key := [4]string{c.Check, string(c.Kind), c.Hop, c.Source}
		if c.Verdict == analysis.Fail && !c.DryRun && !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return cs
	}
	return out
}

// checkName names a check for a link label: "error-rate on checkout →
// payments from traces".
func checkName(c analysis.CheckResult) string {
	return c.Check + " on " + analysis.HopName(c.Hop) + " from " + analysis.SourceName(c.Source)
}

// linkURL is u made safe to put in any dialect's link markup: an absolute
// http or https URL without user information, with the characters that
// could end a link or open markup in it (space, quotes, angle brackets,
// parentheses, brackets, pipe, backslash, backquote) percent-encoded after
// the host. It is "" when u is not such a URL. The runbook URL comes from
// the Rollout's author; the CRD already refuses most of this, and this is
// the line that holds when a stored object bypassed it.
func linkURL(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Opaque != "" {
		return ""
	}
	p.User = nil
	origin := p.Scheme + "://" + p.Host
	rest := strings.TrimPrefix(p.String(), origin)
	if strings.ContainsAny(p.Host, " \"<>()|`") {
		return ""
	}
	return origin + linkEscaper.Replace(rest)
}

var linkEscaper = strings.NewReplacer(" ", "%20", `"`, "%22", "'", "%27", "<", "%3C", ">", "%3E", "(", "%28", ")", "%29",
	"[", "%5B", "]", "%5D", "|", "%7C", `\`, "%5C", "`", "%60")

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
