package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/serin-dev/serin/api"
)

// Cookie and header names.
const (
	sessionCookie = "serin_session"
	loginCookie   = "serin_login" // the pre-session cookie of the login form
	csrfHeader    = "X-CSRF-Token"
)

// session is one signed-in browser. It never holds the token that was
// used to sign in: only the user it resolved to.
type session struct {
	user    api.User
	csrf    string
	expires time.Time
}

// sessions is the in-memory session table, keyed by the SHA-256 of the
// cookie's value so that the table itself holds no usable credential.
type sessions struct {
	mu    sync.Mutex
	byID  map[[sha256.Size]byte]*session
	ttl   time.Duration
	limit int
	now   func() time.Time
}

func newSessions(ttl time.Duration, limit int, now func() time.Time) *sessions {
	return &sessions{byID: map[[sha256.Size]byte]*session{}, ttl: ttl, limit: limit, now: now}
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// create starts a session for u and returns its id (the cookie value).
// When the table is full, expired sessions go first, then the one closest
// to expiry.
func (s *sessions) create(u api.User) (string, *session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	sess := &session{user: u, csrf: csrf, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.limit {
		s.evict(now)
	}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess, nil
}

// evict makes room for one session. The caller holds mu.
func (s *sessions) evict(now time.Time) {
	var oldest [sha256.Size]byte
	var oldestExp time.Time
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
			continue
		}
		if oldestExp.IsZero() || v.expires.Before(oldestExp) {
			oldest, oldestExp = k, v.expires
		}
	}
	if len(s.byID) >= s.limit {
		delete(s.byID, oldest)
	}
}

// get returns the live session of id, or nil.
func (s *sessions) get(id string) *session {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[k]
	if !ok {
		return nil
	}
	if !s.now().Before(sess.expires) {
		delete(s.byID, k)
		return nil
	}
	return sess
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(id)))
}

// session returns the request's live session, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	return c.sessions.get(ck.Value)
}

// AuthenticateRequest implements api.RequestAuthenticator: a request with
// the session cookie is the session's user. A mutation must also carry
// the session's CSRF token in the X-CSRF-Token header, which a page of
// another site cannot read or set.
func (c *Console) AuthenticateRequest(r *http.Request) (api.User, bool, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return api.User{}, false, nil
	}
	s := c.sessions.get(ck.Value)
	if s == nil {
		return api.User{}, true, fmt.Errorf("the session has expired or ended; sign in again: %w", api.ErrUnauthenticated)
	}
	if mutating(r.Method) && !equalSecret(r.Header.Get(csrfHeader), s.csrf) {
		return api.User{}, true, fmt.Errorf("a %s through the console session needs the %s header: %w", r.Method, csrfHeader, api.ErrUnauthenticated)
	}
	return s.user, true, nil
}

func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// equalSecret compares in constant time; an empty value never matches.
func equalSecret(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// setCookie sets a console cookie: HttpOnly, SameSite=Strict, Secure when
// configured. maxAge < 0 deletes it.
func (c *Console) setCookie(w http.ResponseWriter, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.opts.SecureCookies,
	})
}
