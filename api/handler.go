// Package api is serin's REST API (/api/v1): gin routes, JSON shapes,
// bearer-token authentication and authorization (static tokens, or
// TokenReview and SubjectAccessReview with KubeAuth), Server-Sent Events,
// the OpenAPI document, and the audit log. It
// holds no business rules: reads come from the read model
// (api/readmodel), writes go through the Kubernetes API (RolloutWriter),
// and the controller acts on what was written.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/api/readmodel"
)

// DefaultMaxBodyBytes bounds request bodies when Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// Options are the API's dependencies.
type Options struct {
	// Store is the read model that answers every read. Required.
	Store *readmodel.Store
	// Writer makes changes through the Kubernetes API. Required.
	Writer RolloutWriter
	// Authenticator checks bearer tokens. Required: there is no anonymous
	// access.
	Authenticator Authenticator
	// Authorizer decides what each user may do. Required.
	Authorizer Authorizer
	// Workloads sets the images of the Deployments that Rollouts deliver
	// (POST .../release). nil refuses releases with 501.
	Workloads WorkloadWriter
	// Traces reads the example traces of checks (GET .../traces/{id})
	// from the tracing backend. nil answers them with 501.
	Traces TraceReader
	// Tenancy is the operator's grant of namespaces that custom queries
	// may select beyond the rollout's own; nil grants none.
	Tenancy *analysis.Tenancy
	// Log receives errors and the audit log of mutations; nil discards.
	Log *slog.Logger
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Sessions, when set, authenticates requests that carry no bearer
	// token by another credential: the console's session cookie. It is
	// responsible for CSRF protection of the mutations it lets through.
	Sessions RequestAuthenticator
	// Heartbeat is the interval of the SSE streams' ": ping" comments,
	// which keep proxies from closing an idle stream; 0 means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write of an SSE stream: a client that
	// does not take an event (or a heartbeat) within it is dropped. 0
	// means DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// Throttle counts failed bearer-token authentications per client
	// address; past its budget, a client's bearer tokens are refused with
	// 429 and Retry-After before they are checked. Share it with the
	// console's login form (web.Options.Throttle). nil means a throttle of
	// the API's own.
	Throttle *FailureThrottle
	// MaxStreamsPerUser caps the SSE streams one user has open at once;
	// beyond it a new stream is refused with 429. 0 means
	// DefaultMaxStreamsPerUser.
	MaxStreamsPerUser int
}

// Defaults of Options.
const (
	// DefaultHeartbeat is the SSE heartbeat interval.
	DefaultHeartbeat = 15 * time.Second
	// DefaultStreamWriteTimeout is how long one SSE write may take.
	DefaultStreamWriteTimeout = 10 * time.Second
	// DefaultMaxStreamsPerUser is enough for a user with a console open in
	// a handful of tabs and a CLI watching, and keeps one user (or one
	// stolen token) from holding thousands of goroutines and connections.
	DefaultMaxStreamsPerUser = 20
)

// RequestAuthenticator authenticates a request by a credential other than
// a bearer token, such as the web console's session cookie.
type RequestAuthenticator interface {
	// AuthenticateRequest returns the request's user. ok is false when the
	// request carries no such credential at all; err wraps
	// ErrUnauthenticated when it carries one that is not valid (expired,
	// or a mutation without a matching CSRF token).
	AuthenticateRequest(r *http.Request) (u User, ok bool, err error)
}

// server holds the handlers' dependencies and the open streams.
type server struct {
	Options
	streams *streamCount
}

// New returns the API's handler. It serves /api/v1/... and answers JSON
// 404s elsewhere; mount it under "/api/" of the controller's mux.
func New(o Options) (http.Handler, error) {
	var missing []string
	if o.Store == nil {
		missing = append(missing, "Store")
	}
	if o.Writer == nil {
		missing = append(missing, "Writer")
	}
	if o.Authenticator == nil {
		missing = append(missing, "Authenticator")
	}
	if o.Authorizer == nil {
		missing = append(missing, "Authorizer")
	}
	if len(missing) > 0 {
		return nil, errors.New("api: missing options: " + strings.Join(missing, ", "))
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Throttle == nil {
		o.Throttle = NewFailureThrottle(nil)
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if o.MaxStreamsPerUser <= 0 {
		o.MaxStreamsPerUser = DefaultMaxStreamsPerUser
	}
	return engine(&server{Options: o, streams: newStreamCount(o.MaxStreamsPerUser)}), nil
}

// Route is one endpoint of the API.
type Route struct {
	Method string // GET or POST
	Path   string // gin syntax: /api/v1/rollouts/:ns/:name
}

// Routes lists the API's endpoints, as registered with gin; the OpenAPI
// document describes exactly these.
func Routes() []Route {
	var out []Route
	for _, ri := range engine(&server{}).Routes() {
		out = append(out, Route{Method: ri.Method, Path: ri.Path})
	}
	return out
}

// engine builds the gin engine over s. It only registers handlers, so
// Routes can call it on a zero server.
func engine(s *server) *gin.Engine {
	// Release mode only silences gin's route listing on stdout; gin keeps
	// it as a package variable, so it is set here rather than by callers.
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		s.Log.Error("panic in API handler", "path", c.Request.URL.Path, "panic", rec)
		c.AbortWithStatusJSON(http.StatusInternalServerError, ErrorBody{Error: "internal error"})
	}))
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, ErrorBody{Error: "no such endpoint"})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, ErrorBody{Error: "method not allowed"})
	})

	v1 := r.Group("/api/v1", s.limitBody)
	v1.GET("/openapi.json", s.openAPI) // public: it describes, it reveals nothing
	reads := v1.Group("", s.authenticate)
	reads.GET("/rollouts", s.listRollouts)
	reads.GET("/rollouts/:ns/:name", s.getRollout)
	reads.GET("/rollouts/:ns/:name/series", s.getSeries)
	reads.GET("/rollouts/:ns/:name/traces/:traceID", s.getTrace)
	reads.GET("/rollouts/:ns/:name/events", s.streamRollout)
	reads.GET("/events", s.streamAll)

	writes := v1.Group("", s.audit, s.authenticate)
	writes.POST("/rollouts", s.createRollout)
	writes.POST("/rollouts/:ns/:name/pause", s.setPaused(true))
	writes.POST("/rollouts/:ns/:name/resume", s.setPaused(false))
	writes.POST("/rollouts/:ns/:name/promote", s.promote)
	writes.POST("/rollouts/:ns/:name/abort", s.abortRollout)
	writes.POST("/rollouts/:ns/:name/retry", s.retryRollout)
	writes.POST("/rollouts/:ns/:name/release", s.releaseRollout)
	return r
}

// limitBody caps the request body, so that no handler reads more than
// MaxBodyBytes.
func (s *server) limitBody(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.MaxBodyBytes)
	c.Next()
}

// Context keys set by the middleware.
const (
	keyUser   = "serin.user"
	keyAction = "serin.action"
	keyReason = "serin.reason"
	// keyImages holds the images a release set, "name=image, ...".
	keyImages = "serin.images"
)

// authenticate requires a valid bearer token (or, when configured, a
// valid console session) and stores its User.
func (s *server) authenticate(c *gin.Context) {
	u, err := s.identify(c.Request)
	if te, ok := errors.AsType[*throttledError](err); ok {
		s.Log.Info("API: bearer token refused unchecked: too many failures from the address", "remote", te.client, "retryAfter", RetryAfter(te.wait))
		c.Header("Retry-After", RetryAfter(te.wait))
		abort(c, s.Log, errorf(http.StatusTooManyRequests, nil,
			"too many failed authentications from your address; retry in %s s", RetryAfter(te.wait)))
		return
	}
	if ae, ok := errors.AsType[*authError](err); ok {
		if ae.challenge != "" {
			c.Header("WWW-Authenticate", ae.challenge)
		}
		abort(c, s.Log, errorf(http.StatusUnauthorized, nil, "%s", ae.msg))
		return
	}
	if err != nil {
		s.internal(c, "authenticate", err)
		return
	}
	c.Set(keyUser, u)
	c.Next()
}

// authError is a request without a valid credential: 401, with msg and,
// for bearer tokens, the WWW-Authenticate challenge. It wraps
// ErrUnauthenticated.
type authError struct{ msg, challenge string }

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return ErrUnauthenticated }

// throttledError is a bearer token left unchecked because its client has
// failed too often: 429. It does not say whether the token is valid.
type throttledError struct {
	client string
	wait   time.Duration
}

func (e *throttledError) Error() string {
	return fmt.Sprintf("too many failed authentications from %s; retry in %v", e.client, e.wait)
}

// identify authenticates r by its bearer token or, when it has no
// Authorization header and sessions are configured, by its console
// session. A missing or invalid credential is an *authError; a bearer
// token from a client over its failure budget is a *throttledError,
// unchecked; any other error means the check itself failed (a
// TokenReview that could not run).
func (s *server) identify(r *http.Request) (User, error) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok && s.Sessions != nil && r.Header.Get("Authorization") == "" {
		u, found, err := s.Sessions.AuthenticateRequest(r)
		switch {
		case found && err == nil:
			return u, nil
		case found:
			return User{}, &authError{msg: fmt.Sprintf("the console session is not valid: %v", err)}
		}
	}
	if !ok {
		return User{}, &authError{msg: "a bearer token is required", challenge: `Bearer realm="serin"`}
	}
	client := ClientAddr(r)
	if d := s.Throttle.Wait(client); d > 0 {
		return User{}, &throttledError{client: client, wait: d}
	}
	u, err := s.Authenticator.Authenticate(r.Context(), token)
	if errors.Is(err, ErrUnauthenticated) {
		s.Throttle.Failed(client)
		return User{}, &authError{msg: "the bearer token is not valid", challenge: `Bearer realm="serin", error="invalid_token"`}
	}
	return u, err
}

// internal answers 500 for an error of a dependency (such as a failed
// TokenReview) and logs it. Unlike abort, it never maps a Kubernetes API
// status: a 404 from a review is not a missing rollout.
func (s *server) internal(c *gin.Context, what string, err error) {
	s.Log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "step", what, "err", err)
	c.AbortWithStatusJSON(http.StatusInternalServerError, ErrorBody{Error: "internal error"})
}

// bearer extracts the token of an "Authorization: Bearer TOKEN" header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// authorize checks a with the Authorizer and answers 403 when it is
// refused. It records a for the audit log.
func (s *server) authorize(c *gin.Context, a Action) bool {
	c.Set(keyAction, a)
	u := c.MustGet(keyUser).(User)
	ok, err := s.Authorizer.Authorize(c.Request.Context(), u, a)
	if err != nil {
		s.internal(c, "authorize", err)
		return false
	}
	if !ok && a.Resource != "" {
		abort(c, s.Log, errorf(http.StatusForbidden, nil, "user %q may not %s %s %q in namespace %q", u.Name, a.Verb, a.ResourceName(), a.Name, a.Namespace))
		return false
	}
	if !ok {
		abort(c, s.Log, errorf(http.StatusForbidden, nil, "user %q may not %s rollouts in namespace %q", u.Name, verbPhrase(a), a.Namespace))
		return false
	}
	return true
}

func verbPhrase(a Action) string {
	if a.Subresource != "" {
		return a.Subresource
	}
	return a.Verb
}

// audit logs every mutation request once it has been answered: who, what,
// on which rollout, and the status. Never the token.
func (s *server) audit(c *gin.Context) {
	c.Next()
	attrs := []any{"method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status()}
	if u, ok := c.Get(keyUser); ok {
		attrs = append(attrs, "user", u.(User).Name)
	} else {
		attrs = append(attrs, "user", "")
	}
	if v, ok := c.Get(keyAction); ok {
		a := v.(Action)
		attrs = append(attrs, "verb", verbPhrase(a), "namespace", a.Namespace, "name", a.Name)
		if a.Resource != "" {
			attrs = append(attrs, "resource", a.ResourceName())
		}
	}
	if r, ok := c.Get(keyReason); ok {
		attrs = append(attrs, "reason", r)
	}
	if im, ok := c.Get(keyImages); ok {
		attrs = append(attrs, "images", im)
	}
	s.Log.Info("audit", attrs...)
}
