package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The payload formats. Each is a pure function of the message: the send
// path adds only headers.

// color is the hex colour of a severity, for formats that show one.
func (s severity) color() int {
	switch s {
	case sevGood:
		return 0x2EB67D
	case sevWarn:
		return 0xECB22E
	case sevBad:
		return 0xE01E5A
	}
	return 0x439FE0
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// render returns the payload of m for a channel type. now is the send time,
// which only the generic webhook carries (as sentAt).
func render(t Type, m message, now time.Time) ([]byte, error) {
	var v any
	switch t {
	case TypeSlack:
		v = slackPayload(m)
	case TypeDiscord:
		v = discordPayload(m)
	case TypeMattermost:
		v = mattermostPayload(m)
	case TypeTeams:
		v = teamsPayload(m)
	case TypeWebhook:
		v = webhookPayload(m, now)
	default:
		return nil, fmt.Errorf("unknown channel type %q", t)
	}
	return json.Marshal(v)
}

// --- Slack: incoming webhook, Block Kit plus a text fallback. ---

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type   string      `json:"type"`
	Text   *slackText  `json:"text,omitempty"`
	Fields []slackText `json:"fields,omitempty"`
}

type slackMessage struct {
	// Text is the fallback for notifications and clients without blocks.
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackPayload(m message) slackMessage {
	blocks := []slackBlock{{Type: "header", Text: &slackText{"plain_text", truncate(m.Title, 150)}}}
	if len(m.Text) > 0 {
		blocks = append(blocks, slackBlock{Type: "section",
			Text: &slackText{"mrkdwn", truncate(slackEscape.Replace(strings.Join(m.Text, "\n")), 3000)}})
	}
	var fields []slackText
	for _, f := range m.Fields[:min(len(m.Fields), 10)] {
		fields = append(fields, slackText{"mrkdwn", truncate("*"+slackEscape.Replace(f.Label)+"*\n"+slackEscape.Replace(f.Value), 2000)})
	}
	if len(fields) > 0 {
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	if len(m.Links) > 0 {
		var ls []string
		for _, l := range m.Links {
			ls = append(ls, "<"+slackEscape.Replace(l.URL)+"|"+slackEscape.Replace(l.Label)+">")
		}
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn", strings.Join(ls, " · ")}})
	}
	return slackMessage{Text: slackEscape.Replace(m.plain()), Blocks: blocks}
}

// --- Discord: its own webhook format, content plus one embed. ---

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	URL         string         `json:"url,omitempty"`
	Description string         `json:"description,omitempty"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields,omitempty"`
	Timestamp   string         `json:"timestamp,omitempty"`
}

type discordMessage struct {
	Content string         `json:"content"`
	Embeds  []discordEmbed `json:"embeds"`
	// AllowedMentions is empty so that a message quoting "@everyone"
	// pings nobody.
	AllowedMentions struct {
		Parse []string `json:"parse"`
	} `json:"allowed_mentions"`
}

// mdLinks renders links as Markdown, for Discord and Mattermost. The
// labels are escaped; the URLs went through linkURL, which encodes what
// could end a link.
func mdLinks(ls []link) string {
	var s []string
	for _, l := range ls {
		s = append(s, "["+markdown(l.Label)+"]("+l.URL+")")
	}
	return strings.Join(s, " · ")
}

// mdBody is the text, escaped, then the links, for Discord and Mattermost.
func mdBody(m message) string {
	body := markdown(strings.Join(m.Text, "\n"))
	if len(m.Links) > 0 {
		body += "\n" + mdLinks(m.Links)
	}
	return strings.TrimSpace(body)
}

func discordPayload(m message) discordMessage {
	e := discordEmbed{Title: truncateEscaped(markdown(m.Title), 256), Description: truncateEscaped(mdBody(m), 4096), Color: m.Severity.color()}
	e.URL = m.console()
	if !m.Event.Time.IsZero() {
		e.Timestamp = m.Event.Time.UTC().Format(time.RFC3339)
	}
	for _, f := range m.Fields[:min(len(m.Fields), 25)] {
		e.Fields = append(e.Fields, discordField{truncateEscaped(markdown(f.Label), 256), truncateEscaped(markdown(f.Value), 1024), true})
	}
	msg := discordMessage{Content: truncateEscaped(markdown(m.Title), 2000), Embeds: []discordEmbed{e}}
	msg.AllowedMentions.Parse = []string{}
	return msg
}

// --- Mattermost: Slack-compatible text plus attachments. ---

type mattermostField struct {
	Short bool   `json:"short"`
	Title string `json:"title"`
	Value string `json:"value"`
}

type mattermostAttachment struct {
	Fallback  string            `json:"fallback"`
	Color     string            `json:"color"`
	Title     string            `json:"title"`
	TitleLink string            `json:"title_link,omitempty"`
	Text      string            `json:"text,omitempty"`
	Fields    []mattermostField `json:"fields,omitempty"`
}

type mattermostMessage struct {
	Text        string                 `json:"text"`
	Attachments []mattermostAttachment `json:"attachments"`
}

func mattermostPayload(m message) mattermostMessage {
	// The fallback is plain text (notifications, old clients): it only
	// needs its mentions broken.
	a := mattermostAttachment{Fallback: noMentions(m.plain()), Color: fmt.Sprintf("#%06X", m.Severity.color()),
		Title: markdown(m.Title), Text: mdBody(m)}
	a.TitleLink = m.console()
	for _, f := range m.Fields {
		a.Fields = append(a.Fields, mattermostField{Short: true, Title: markdown(f.Label), Value: markdown(f.Value)})
	}
	return mattermostMessage{Text: "**" + markdown(m.Title) + "**", Attachments: []mattermostAttachment{a}}
}

// --- Microsoft Teams: an Adaptive Card in the envelope that the Workflows
// "Post to a channel when a webhook request is received" template reads
// (type message, attachments[].contentType adaptive). ---

type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []map[string]any `json:"body"`
	Actions []map[string]any `json:"actions,omitempty"`
}

func (s severity) teamsColor() string {
	return map[severity]string{sevGood: "Good", sevWarn: "Warning", sevBad: "Attention"}[s]
}

// teamsPayload puts the text lines in RichTextBlocks, whose TextRuns
// Adaptive Cards never read as Markdown: nothing to escape, and no
// backslashes for the clients that show them. The title (a TextBlock, for
// its heading style) and the facts are Markdown there, so they are
// escaped.
func teamsPayload(m message) teamsMessage {
	title := map[string]any{"type": "TextBlock", "text": teamsMarkdown(m.Title), "weight": "Bolder", "size": "Medium", "wrap": true, "style": "heading"}
	if c := m.Severity.teamsColor(); c != "" {
		title["color"] = c
	}
	body := []map[string]any{title}
	for _, t := range m.Text {
		body = append(body, map[string]any{"type": "RichTextBlock",
			"inlines": []map[string]any{{"type": "TextRun", "text": noMentions(t)}}})
	}
	var facts []map[string]any
	for _, f := range m.Fields {
		facts = append(facts, map[string]any{"title": teamsMarkdown(f.Label), "value": teamsMarkdown(f.Value)})
	}
	if len(facts) > 0 {
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	var actions []map[string]any
	for _, l := range m.Links {
		actions = append(actions, map[string]any{"type": "Action.OpenUrl", "title": noMentions(l.Label), "url": l.URL})
	}
	card := teamsCard{Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard",
		Version: "1.4", Body: body, Actions: actions}
	return teamsMessage{Type: "message", Attachments: []teamsAttachment{{
		ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}
}
