package notify

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// hostile is an abort reason written to hijack a chat message: mentions,
// a masked link, emphasis, Discord's mention and spoiler syntax, and block
// markup on lines of its own.
const hostile = "@channel [login](https://evil.example) **now** <@123> <!here> @everyone @here @all\n" +
	"# Big\n-# small\n> quoted\n- item\n1. one ~~gone~~ `code` _it_ ||spoiler|| a|b \\[x\\]"

func hostileAbort() rollout.Event {
	return rollout.Event{Kind: rollout.EventAborted, Namespace: "shop", Name: "checkout", Time: t0, Weight: 25, Step: 1,
		Message: hostile, By: "@here [me](https://evil.example)"}
}

// hostileRollback has a hostile reason and a hostile hop, which is a
// service name from traces and ends up in a field and a link label.
func hostileRollback() rollout.Event {
	ev := rolledBack()
	ev.Message = hostile
	ev.Runbook = "https://wiki.example/a)b [login](https://evil.example) <!here> `x`|y"
	ev.Checks = []analysis.CheckResult{{Check: "error-rate", Hop: "checkout → [pay](https://evil.example) @channel *x*", Source: "jaeger",
		Verdict: analysis.Fail, Canary: 5.2, Stable: 0.1, Limit: 1, Unit: "%", CanaryRequests: 80, StableRequests: 400,
		Reason: hostile, TraceID: "4bf92f3577b34da6"}}
	return ev
}

// markup finds what must not survive escaping: a masked link to the
// attacker, a mention, emphasis or a heading from the reason.
var markup = []*regexp.Regexp{
	regexp.MustCompile(`[^\\]\]\(https://evil`),
	regexp.MustCompile(`@(channel|here|everyone|all)`),
	regexp.MustCompile(`(^|[^\\])\*\*now`),
	regexp.MustCompile(`(?m)^# Big`),
	regexp.MustCompile(`(?m)^> quoted`),
	regexp.MustCompile(`(?m)^- item`),
	regexp.MustCompile(`(?m)^1\. one`),
}

// strs calls f on every string in a decoded JSON document, with its path.
func strs(doc any, path string, f func(path, s string)) {
	switch v := doc.(type) {
	case map[string]any:
		for k, x := range v {
			strs(x, path+"."+k, f)
		}
	case []any:
		for _, x := range v {
			strs(x, path+".*", f)
		}
	case string:
		f(path, v)
	}
}

func TestHostileTextEscaped(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   rollout.Event
	}{{"aborted", hostileAbort()}, {"rolledback", hostileRollback()}} {
		m := build(tc.ev, testLinks)
		for _, typ := range []Type{TypeSlack, TypeDiscord, TypeMattermost, TypeTeams, TypeWebhook} {
			t.Run(tc.name+"/"+string(typ), func(t *testing.T) {
				body, err := render(typ, m, t0)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", "golden", string(typ)+"-"+tc.name+".json"), body)
				var doc any
				if err := json.Unmarshal(body, &doc); err != nil {
					t.Fatal(err)
				}
				strs(doc, "", func(path, s string) {
					switch {
					case typ == TypeWebhook:
						return // data for programs: carried as it is
					case typ == TypeSlack:
						// mrkdwn: no <, > or & of the user's; serin's own links are <url|label>.
						s = regexp.MustCompile(`<https://[^|>]+\|([^<>]*)>`).ReplaceAllString(s, "$1")
						if strings.ContainsAny(s, "<>") || regexp.MustCompile(`&[^agl]`).MatchString(s) {
							t.Errorf("%s not escaped for mrkdwn: %q", path, s)
						}
						return
					case typ == TypeTeams && (strings.HasSuffix(path, "inlines.*.text") || strings.HasSuffix(path, "actions.*.title")),
						typ == TypeMattermost && strings.HasSuffix(path, ".fallback"):
						// Plain text, never read as Markdown (a TextRun, a
						// button's label, Mattermost's fallback): only its
						// mentions are broken.
						if markup[1].MatchString(s) {
							t.Errorf("%s keeps a mention: %q", path, s)
						}
						return
					}
					for _, re := range markup {
						if re.MatchString(s) {
							t.Errorf("%s keeps markup %s: %q", path, re, s)
						}
					}
				})
				// serin's own markup survives.
				switch typ {
				case TypeMattermost, TypeDiscord:
					if !strings.Contains(string(body), "[Open in console](https://serin.example/rollouts/shop/checkout)") {
						t.Errorf("the console link is gone: %s", body)
					}
				case TypeWebhook:
					var p WebhookPayload
					if err := json.Unmarshal(body, &p); err != nil || p.Message != hostile {
						t.Errorf("webhook message = %q, want the reason as it is", p.Message)
					}
				}
			})
		}
	}
}

// golden compares got, indented, with the file; -update rewrites it.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run TestHostileTextEscaped -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", file, buf.Bytes(), want)
	}
}

func TestEscapers(t *testing.T) {
	for _, tc := range []struct {
		f        func(string) string
		in, want string
	}{
		{markdown, "canary 5.2% > limit 1% (step 1)", "canary 5.2% > limit 1% (step 1)"},
		{markdown, "5.2%", "5.2%"},
		{markdown, "-5 ms", "-5 ms"},
		{markdown, "error-rate on checkout → payments", "error-rate on checkout → payments"},
		{markdown, "[a](https://x) *b* _c_ ~d~ `e` <f> |g|", `\[a\](https://x) \*b\* \_c\_ \~d\~ \` + "`e\\`" + ` \<f> \|g\|`},
		{markdown, "# h\n## h\n-# s\n> q\n- l\n+ l\n---\n===\n3. n\n12) n", "\\# h\n\\## h\n\\-# s\n\\> q\n\\- l\n\\+ l\n\\---\n\\===\n3\\. n\n12\\) n"},
		{markdown, "a\r\nb\rc", "a\nb\nc"},
		{markdown, `back\slash`, `back\\slash`},
		{markdown, "@channel hi @Here x@all mail carol@example.com (@everyone)", "@\u200bchannel hi @\u200bHere x@all mail carol@example.com (@\u200beveryone)"},
		{teamsMarkdown, "[a](https://x) *b* _c_ ~d~ # e", `\[a\](https://x) \*b\* \_c\_ ~d~ # e`},
		{teamsMarkdown, "- l\n1. n\n> q", "\\- l\n1\\. n\n> q"},
		{noMentions, "@all [x](y)", "@\u200ball [x](y)"},
	} {
		if got := tc.f(tc.in); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := truncateEscaped(`abc\*def`, 5); got != "abc…" {
		t.Errorf("truncateEscaped split an escape: %q", got)
	}
}
