package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/serin-dev/serin/api"
)

// maxFormBytes bounds the login and logout forms.
const maxFormBytes = 16 << 10

// loginView is the login page's data.
type loginView struct {
	CSRF  string // the form's token, tied to the pre-session cookie
	Next  string
	Error string
}

// loginForm shows the login form, with a fresh pre-session cookie and the
// form token derived from it.
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.session(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.showLogin(w, http.StatusOK, safeNext(r.URL.Query().Get("next")), "")
}

func (c *Console) showLogin(w http.ResponseWriter, status int, next, msg string) {
	pre, err := randomToken()
	if err != nil {
		c.opts.Log.Error("console: login form", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c.setCookie(w, loginCookie, pre, "/login", 3600)
	c.render(w, status, "login", layout{Title: "Sign in", Page: loginView{CSRF: c.loginToken(pre), Next: next, Error: msg}})
}

// loginToken is the form token for the pre-session cookie value pre: an
// HMAC under a key derived from the session key, which only the console's
// replicas know (so that the form of one is good on another), and a
// cookie planted by someone else is useless without its matching form.
func (c *Console) loginToken(pre string) string {
	m := hmac.New(sha256.New, c.keys.login)
	m.Write([]byte("serin-login:" + pre))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// login checks the form's CSRF token and then the pasted token. On
// success it starts a session; the token is never logged, and is kept
// only sealed in the session cookie, to check it again.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.showLogin(w, http.StatusBadRequest, "/", "The form could not be read; try again.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	pre, err := r.Cookie(loginCookie)
	if err != nil || !equalSecret(r.PostFormValue("csrf"), c.loginToken(pre.Value)) {
		c.showLogin(w, http.StatusForbidden, next, "The form expired; paste the token again.")
		return
	}
	client := api.ClientAddr(r)
	if d := c.throttle.Wait(client); d > 0 {
		secs := int(d.Seconds() + 0.999)
		c.opts.Log.Info("console: sign-in throttled", "remote", client, "retryAfter", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.showLogin(w, http.StatusTooManyRequests, next, fmt.Sprintf("Too many failed sign-ins from your address; try again in %d s.", secs))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	u, err := c.opts.Authenticator.Authenticate(r.Context(), token)
	if token == "" || errors.Is(err, api.ErrUnauthenticated) {
		c.throttle.Failed(client)
		c.opts.Log.Info("console: sign-in refused", "remote", client)
		c.showLogin(w, http.StatusUnauthorized, next, "That token is not valid.")
		return
	}
	if err != nil {
		c.opts.Log.Error("console: check token", "err", err)
		c.showLogin(w, http.StatusServiceUnavailable, next, "The token could not be checked right now; try again.")
		return
	}
	now := c.opts.Now()
	if exp, ok := api.TokenExpiry(token); ok && !exp.After(now) {
		c.opts.Log.Info("console: sign-in refused: the token has expired", "remote", client, "user", u.Name)
		c.showLogin(w, http.StatusUnauthorized, next, "That token has expired.")
		return
	}
	id, sess, err := c.sessions.create(u, token)
	if errors.Is(err, errTokenTooLong) {
		c.opts.Log.Info("console: sign-in refused: the token does not fit in a session cookie", "remote", client, "user", u.Name)
		c.showLogin(w, http.StatusBadRequest, next, "That token is too long to keep in a console session; sign in with a shorter one.")
		return
	}
	if err != nil {
		c.opts.Log.Error("console: start session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c.setCookie(w, loginCookie, "", "/login", -1)
	c.setCookie(w, sessionCookie, id, "/", max(1, int(sess.expires.Sub(now).Seconds()))) // 0 would mean no Max-Age
	c.opts.Log.Info("console: signed in", "user", u.Name)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session: it clears the cookie, and ends the session on
// this replica (see sessions for what other replicas do with a copy). The
// form carries the session's CSRF token so that another site cannot sign
// a user out.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	_ = r.ParseForm()
	ck, err := r.Cookie(sessionCookie)
	if err == nil {
		s := c.sessions.get(ck.Value)
		if s != nil && !equalSecret(r.PostFormValue("csrf"), s.csrf) {
			c.errorPage(w, r, s, http.StatusForbidden, "The sign-out form expired; reload the page and try again.")
			return
		}
		if s != nil {
			c.opts.Log.Info("console: signed out", "user", s.user.Name)
			c.sessions.end(s)
		}
	}
	c.setCookie(w, sessionCookie, "", "/", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// requireSession returns the request's session, or redirects to the
// login form and returns nil.
func (c *Console) requireSession(w http.ResponseWriter, r *http.Request) *session {
	if s := c.session(r); s != nil {
		return s
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	return nil
}

// safeNext keeps a redirect target on this site: it returns next when it
// is a clean local path (with an optional query), and "/" otherwise.
// Browsers are lenient where this is strict: they drop tabs and newlines
// from a URL, read '\\' as '/', and take "//host" as another origin, so
// "/\t/evil.example" leads to http://evil.example/. A clean path starts
// with exactly one '/', has no backslash, control character or white
// space anywhere (raw or percent-decoded), and parses as a path alone,
// without scheme, host or user.
func safeNext(next string) string {
	if !cleanPath(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !cleanPath(u.Path) {
		return "/"
	}
	return next
}

// cleanPath reports whether p starts with one '/' that is not followed by
// '/', and has no backslash, control character or white space.
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	for _, r := range p {
		if r == '\\' || r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) ||
			unicode.In(r, unicode.Zl, unicode.Zp, unicode.Cf) {
			return false
		}
	}
	return true
}
