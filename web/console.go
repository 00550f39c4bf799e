// Package web is serin's console: pages (html/template) for the list of
// rollouts and each rollout, kept live in the browser by plain JavaScript
// that reads the REST API (/api/v1) and its Server-Sent Events. The
// rollout page is rendered on the server; the list page is a frame whose
// rows list.js draws from the API's summaries, only those in view, so
// that it stays responsive at thousands of rollouts. It holds no API
// logic of its own: pages read the same read model
// as the API and ask the same Authorizer, and every change goes through
// the API. The console's part of authentication is the login form, which
// turns a token into a session cookie, and AuthenticateRequest, which lets
// the API accept that cookie (with a CSRF header for mutations).
package web

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Defaults of Options.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultMaxSessions = 1000
	// DefaultRecheckInterval is how often, at most, a session's token is
	// checked again: a deleted ServiceAccount or a revoked token signs the
	// browser out within it, for one TokenReview per session per interval.
	DefaultRecheckInterval = 30 * time.Second
)

// contentSecurityPolicy forbids inline scripts and styles and every
// origin but the console's own: the JavaScript and CSS are static files.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Options are the console's dependencies.
type Options struct {
	// Store is the read model the pages are rendered from. Required.
	Store *readmodel.Store
	// Authenticator checks the token pasted into the login form. Required.
	Authenticator api.Authenticator
	// Authorizer decides what a signed-in user may see, and whether the
	// rollout page shows the operator's buttons. Required.
	Authorizer api.Authorizer
	// SecureCookies marks the cookies Secure; set it when the console is
	// served over TLS.
	SecureCookies bool
	// Log receives logins, logouts and errors, never a token; nil discards.
	Log *slog.Logger
	// SessionTTL is how long a session lasts at most; 0 means
	// DefaultSessionTTL. A session whose token says it expires sooner (a
	// bound service-account token's exp) ends then.
	SessionTTL time.Duration
	// RecheckInterval is how often, at most, a session's token is checked
	// again with the Authenticator, on a page or an API request of the
	// session; a refusal ends the session. 0 means DefaultRecheckInterval.
	RecheckInterval time.Duration
	// MaxSessions bounds the sessions this replica keeps notes on (when it
	// last checked each one's token, and which were signed out here); the
	// sessions themselves live in their cookies, unbounded. When it is
	// reached the least useful note goes (see sessions.note). 0 means
	// DefaultMaxSessions.
	MaxSessions int
	// SessionKey seals the session cookies and signs the login form: at
	// least MinSessionKeyBytes random bytes (ReadSessionKey reads it from a
	// mounted Secret). Give every replica the same key, so that a session
	// started on one is good on all, and survives a restart. nil means a
	// random key of this process: sessions then end with it and hold on
	// this replica only, which is logged. A shorter key is an error.
	SessionKey []byte
	// Throttle counts failed sign-ins per client address; share the API's
	// (api.Options.Throttle) so that a client has one budget for both.
	// nil means a throttle of the console's own.
	Throttle *api.FailureThrottle
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Console is the web console's http.Handler (mount it at "/", next to the
// API at "/api/") and the api.RequestAuthenticator of its session cookie
// (pass it as api.Options.Sessions).
type Console struct {
	opts     Options
	pages    map[string]*template.Template
	sessions *sessions
	keys     consoleKeys // seal the sessions, sign the login form
	throttle *api.FailureThrottle
	mux      *http.ServeMux
}

var _ api.RequestAuthenticator = (*Console)(nil)

// New returns the console.
func New(o Options) (*Console, error) {
	var missing []string
	if o.Store == nil {
		missing = append(missing, "Store")
	}
	if o.Authenticator == nil {
		missing = append(missing, "Authenticator")
	}
	if o.Authorizer == nil {
		missing = append(missing, "Authorizer")
	}
	if len(missing) > 0 {
		return nil, errors.New("web: missing options: " + strings.Join(missing, ", "))
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.RecheckInterval <= 0 {
		o.RecheckInterval = DefaultRecheckInterval
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Throttle == nil {
		o.Throttle = api.NewFailureThrottle(o.Now)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	key := o.SessionKey
	if key == nil {
		if key, err = randomKey(); err != nil {
			return nil, err
		}
		o.Log.Warn("console: no session key given (--session-key-file): a random one is used, so that sessions do not survive a restart and hold on this replica only")
	}
	keys, err := deriveKeys(key)
	if err != nil {
		return nil, err
	}
	c := &Console{
		opts:     o,
		pages:    pages,
		sessions: newSessions(keys, o.SessionTTL, o.MaxSessions, o.Now),
		keys:     keys,
		throttle: o.Throttle,
	}
	c.mux = c.routes()
	return c, nil
}

func (c *Console) routes() *http.ServeMux {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", c.listPage)
	m.HandleFunc("GET /rollouts/{ns}/{name}", c.rolloutPage)
	m.HandleFunc("GET /login", c.loginForm)
	m.HandleFunc("POST /login", c.login)
	m.HandleFunc("POST /logout", c.logout)
	m.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
	return m
}

// ServeHTTP implements http.Handler. Every answer carries the security
// headers, whatever the route.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"clock":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"lower":   strings.ToLower,
		"has":     slices.Contains[[]string],
	}
	out := map[string]*template.Template{}
	for _, p := range []string{"login", "list", "rollout", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		out[p] = t
	}
	return out, nil
}

// layout is what every page's frame shows.
type layout struct {
	Title string
	User  string // empty on the login page
	CSRF  string // the session's CSRF token, for the logout form and the JS
	Page  any
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, status int, page string, l layout) {
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, l); err != nil {
		c.opts.Log.Error("console: render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage answers with a short page in plain words.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	l := layout{Title: http.StatusText(status), Page: struct {
		Status  int
		Message string
	}{status, msg}}
	if s != nil {
		l.User, l.CSRF = s.user.Name, s.csrf
	}
	c.render(w, status, "error", l)
}
