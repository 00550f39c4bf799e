package notify

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escaping for each chat dialect. A message's Text, Fields and link labels
// are plain text, and much of it comes from users and their services: an
// abort reason, who asked, a check's hop (a service name from traces). The
// formats escape all of it for their dialect and then add serin's own
// markup (bold titles, links), so only serin's markup is ever markup. The
// generic webhook carries the text as it is: it is data, for programs.

// zwsp is a zero-width space. After an @ it breaks a mention: "@​channel"
// shows as "@channel" and pings nobody.
const zwsp = "\u200b"

// noMentions puts a zero-width space after every @ that could start a
// mention (@channel, @here, @everyone, @all or a user): one at the start
// or after anything but a letter or digit. An e-mail address stays as it
// is.
func noMentions(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	prev := ' '
	for _, r := range s {
		b.WriteRune(r)
		if r == '@' && !unicode.IsLetter(prev) && !unicode.IsDigit(prev) {
			b.WriteString(zwsp)
		}
		prev = r
	}
	return b.String()
}

// markdown escapes s for Mattermost and Discord: a backslash before each
// character that can open inline markup (emphasis, code, strikethrough,
// links and images, autolinks and Discord's <@id> mentions, spoilers and
// tables) and before a block marker at the start of a line (heading,
// quote, list, setext underline), then noMentions. Both honour CommonMark's
// backslash escapes.
func markdown(s string) string {
	return noMentions(escapeLines(s, "\\`*_~[]<|", "#>-+="))
}

// teamsMarkdown escapes s for the Markdown that Adaptive Cards read in
// TextBlock and FactSet: only bold, italic, lists and links exist there,
// so only their characters are escaped; fewer backslashes matter because
// some Teams clients show them.
func teamsMarkdown(s string) string {
	return noMentions(escapeLines(s, "\\*_[]", "-+"))
}

// escapeLines escapes, in each line of s, the inline characters anywhere
// and a block marker (or an ordered list's "1." or "1)") where the line
// starts, after any indentation. Line breaks are normalised to "\n".
func escapeLines(s, inline, block string) string {
	s = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		var b strings.Builder
		for _, r := range l {
			if r < utf8.RuneSelf && strings.ContainsRune(inline, r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		lines[i] = escapeBlockStart(b.String(), block)
	}
	return strings.Join(lines, "\n")
}

// escapeBlockStart escapes the block marker that l starts with, if any. A
// marker counts only where CommonMark (or Discord) would read one: '>'
// always; a run of '#', '-', '+' or '=' before a space or the end of the
// line (a heading, a list item, a rule, a setext underline); Discord's
// "-#"; digits before '.' or ')' and a space or the end (an ordered list).
// So "-5 ms" and "5.2%" stay as they are.
func escapeBlockStart(l, block string) string {
	rest := strings.TrimLeft(l, " \t")
	indent := l[:len(l)-len(rest)]
	if rest == "" {
		return l
	}
	if c := rest[0]; strings.IndexByte(block, c) >= 0 {
		after := strings.TrimLeft(rest, string(c)) // "## x": a heading
		if c == '>' || spaceOrEnd(after) || strings.Trim(after, " \t") == "" ||
			c == '-' && strings.HasPrefix(rest, "-#") { // Discord's "-# " small text
			return indent + `\` + rest
		}
		return l
	}
	d := 0
	for d < len(rest) && d < 10 && rest[d] >= '0' && rest[d] <= '9' {
		d++
	}
	if d > 0 && d < 10 && d < len(rest) && (rest[d] == '.' || rest[d] == ')') && spaceOrEnd(rest[d+1:]) {
		return indent + rest[:d] + `\` + rest[d:]
	}
	return l
}

func spaceOrEnd(s string) bool { return s == "" || s[0] == ' ' || s[0] == '\t' }

// truncateEscaped is truncate for escaped text: it never leaves half an
// escape (a lone backslash) before the ellipsis.
func truncateEscaped(s string, n int) string {
	t := truncate(s, n)
	if t == s {
		return s
	}
	body := strings.TrimSuffix(t, "…")
	trailing := len(body) - len(strings.TrimRight(body, `\`))
	if trailing%2 == 1 {
		body = body[:len(body)-1]
	}
	return body + "…"
}
