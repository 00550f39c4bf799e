package analysis

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxQueryBytes bounds a rendered custom query. The CRD bounds the
// template to 4 KiB; the values substituted into it are a rollout's names
// and hosts, so a legitimate query stays far below this.
const MaxQueryBytes = 16 << 10

// ErrQueryTemplate is wrapped by every error RenderQuery returns: the
// query's template is not one it can fill.
var ErrQueryTemplate = errors.New("invalid custom query template")

// RenderQuery fills a custom query's {{ .Name }} placeholders with vars.
//
// It is plain substitution, not a template language: a placeholder is
// "{{", optional spaces, a dot, the name of one of vars, optional spaces
// and "}}", and any other "{{ … }}" is an error naming it, so a query can
// neither loop nor grow without bound. A reference to an unknown variable
// is an error naming it, and so is a result over MaxQueryBytes.
//
// Values are the rollout's label values, so they are substituted where
// PromQL sees them: inside a string literal (or a comment) a value is
// escaped for that literal and cannot end it; outside one, where a value
// would become part of the query's syntax, it must be a plain name
// (letters, digits, '_'), or RenderQuery fails. Either way a value can
// change the strings and names in the query but never its shape, which is
// what lets the tenancy check run on the query before its values are
// known (see CheckQuery).
func RenderQuery(query string, vars map[string]string) (string, error) {
	var b strings.Builder
	var lx promqlContext
	for rest := query; rest != ""; {
		i := strings.Index(rest, "{{")
		if i < 0 {
			lx.feed(rest)
			b.WriteString(rest)
			break
		}
		lx.feed(rest[:i])
		b.WriteString(rest[:i])
		rest = rest[i:]
		end := strings.Index(rest, "}}")
		if end < 0 {
			return "", fmt.Errorf("%w: %s is not closed by }}", ErrQueryTemplate, clipAction(rest))
		}
		action := rest[:end+2]
		rest = rest[end+2:]
		name, ok := placeholderName(action)
		if !ok {
			return "", fmt.Errorf("%w: %s: only {{ .Name }} placeholders are allowed, with one of the variables %s",
				ErrQueryTemplate, clipAction(action), strings.Join(sortedKeys(vars), ", "))
		}
		v, known := vars[name]
		if !known {
			return "", fmt.Errorf("%w: %s: no variable %s (known: %s)", ErrQueryTemplate, action, name, strings.Join(sortedKeys(vars), ", "))
		}
		out, err := lx.substitute(v)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrQueryTemplate, action, err)
		}
		b.WriteString(out)
		if b.Len() > MaxQueryBytes {
			break
		}
	}
	if b.Len() > MaxQueryBytes {
		return "", fmt.Errorf("%w: the rendered query is over %d bytes", ErrQueryTemplate, MaxQueryBytes)
	}
	return b.String(), nil
}

// placeholderName returns Name for an action "{{ .Name }}" or "{{.Name}}"
// (spaces and tabs around the reference are allowed), and false for any
// other action.
func placeholderName(action string) (string, bool) {
	inner := strings.Trim(action[2:len(action)-2], " \t")
	name, ok := strings.CutPrefix(inner, ".")
	if !ok || name == "" {
		return "", false
	}
	for i, r := range name {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return "", false
		}
	}
	return name, true
}

// clipAction shortens an action for an error message.
func clipAction(s string) string {
	const n = 60
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return s[:n] + "…"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// promqlContext follows a query's text the way PromQL's lexer does, far
// enough to tell where a placeholder stands: in the query's syntax, inside
// a string literal (and which quote), or in a comment.
type promqlContext struct {
	quote   byte // '"', '\'' or '`' inside a string literal, else 0
	escaped bool // a backslash inside a quoted string escapes the next byte
	comment bool // from '#' to the end of the line
}

// feed advances the context over literal query text.
func (c *promqlContext) feed(s string) {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case c.comment:
			c.comment = ch != '\n'
		case c.escaped:
			c.escaped = false
		case c.quote != 0:
			switch {
			case ch == '\\' && c.quote != '`':
				c.escaped = true
			case ch == c.quote:
				c.quote = 0
			}
		case ch == '"' || ch == '\'' || ch == '`':
			c.quote = ch
		case ch == '#':
			c.comment = true
		}
	}
}

// substitute returns v as it may stand at the current position.
func (c *promqlContext) substitute(v string) (string, error) {
	switch {
	case c.escaped:
		return "", errors.New("a placeholder may not follow a backslash")
	case c.quote == '`':
		// Raw strings have no escapes, so a backquote cannot be written
		// in one, and PromQL's lexer refuses bytes that are not UTF-8.
		if strings.ContainsRune(v, '`') || !utf8.ValidString(v) {
			return "", fmt.Errorf("the value %q cannot be written in a `raw string`; use double quotes", v)
		}
		return v, nil
	case c.quote != 0:
		return escapeString(v, c.quote), nil
	case c.comment:
		return escapeString(v, '"'), nil // no newline ends the comment early
	}
	if !plainName(v) {
		return "", fmt.Errorf("the value %q is outside a string literal and is not a plain name (letters, digits, _); put the placeholder in quotes", v)
	}
	return v, nil
}

func plainName(v string) bool {
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if !(ch == '_' || 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return false
		}
	}
	return true
}

// escapeString escapes v for the inside of a PromQL string literal opened
// with quote: backslashes, that quote and every control character are
// escaped, so the literal cannot end, nor a line break, inside the value.
// Bytes that are not UTF-8 are written as \x escapes.
func escapeString(v string, quote byte) string {
	var b strings.Builder
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, v[i])
		case r == '\\' || r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == 0x2028 || r == 0x2029 || r == 0x85:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}
