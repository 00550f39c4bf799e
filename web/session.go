package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
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

// session is one signed-in browser. It holds the user its token resolved
// to and the token itself, sealed under a key derived from the session's
// cookie (see seal), so that its credential can be checked again while
// the table alone yields no usable credential.
type session struct {
	user    api.User
	csrf    string
	expires time.Time
	sealed  []byte    // the sign-in token, sealed
	checked time.Time // when the token was last checked; guarded by sessions.mu
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

// create starts a session for u, signed in with token, and returns its
// id (the cookie value). The session lasts the TTL, or less when the
// token says it expires sooner (api.TokenExpiry; never longer). When the
// table is full, expired sessions go first, then the one closest to
// expiry.
func (s *sessions) create(u api.User, token string) (string, *session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	sealed, err := seal(id, token)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	sess := &session{user: u, csrf: csrf, expires: now.Add(s.ttl), sealed: sealed, checked: now}
	if exp, ok := api.TokenExpiry(token); ok && exp.Before(sess.expires) {
		sess.expires = exp
	}
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

// claimCheck reports whether sess's token is due for another check at
// now, at most every interval, and if so marks it checked, so that
// concurrent requests do not all check it.
func (s *sessions) claimCheck(sess *session, now time.Time, interval time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(sess.checked) < interval {
		return false
	}
	sess.checked = now
	return true
}

// session returns the request's live session, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	return c.liveSession(r, ck.Value)
}

// liveSession returns the session of cookie value id when it has not
// expired and its token still authenticates as its user, or nil. The
// token is checked again at most every RecheckInterval, so that a session
// ends soon after its ServiceAccount is deleted or its token revoked. A
// check that cannot be made (the API server is unreachable) keeps the
// session and is logged; a refusal ends it.
func (c *Console) liveSession(r *http.Request, id string) *session {
	s := c.sessions.get(id)
	if s == nil || !c.sessions.claimCheck(s, c.opts.Now(), c.opts.RecheckInterval) {
		return s
	}
	token, err := open(id, s.sealed)
	if err != nil { // cannot happen with the cookie that sealed it
		c.opts.Log.Error("console: open the session's token", "user", s.user.Name, "err", err)
		c.sessions.end(id)
		return nil
	}
	u, err := c.opts.Authenticator.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, api.ErrUnauthenticated):
		c.opts.Log.Info("console: session ended: its token no longer authenticates", "user", s.user.Name)
	case err != nil:
		c.opts.Log.Warn("console: cannot check the session's token again; it stays signed in", "user", s.user.Name, "err", err)
		return s
	case u.Name != s.user.Name || u.UID != s.user.UID:
		c.opts.Log.Info("console: session ended: its token now names another user", "user", s.user.Name, "now", u.Name)
	default:
		return s
	}
	c.sessions.end(id)
	return nil
}

// AuthenticateRequest implements api.RequestAuthenticator: a request with
// the session cookie is the session's user, checked as pages check it. A
// mutation must also carry the session's CSRF token in the X-CSRF-Token
// header, which a page of another site cannot read or set.
func (c *Console) AuthenticateRequest(r *http.Request) (api.User, bool, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return api.User{}, false, nil
	}
	s := c.liveSession(r, ck.Value)
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

// sessionKey derives the key that seals a session's token from the
// session's cookie value id. The table is keyed by SHA-256(id), from
// which this HMAC keyed by id cannot be computed.
func sessionKey(id string) []byte {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("serin-session-token"))
	return m.Sum(nil)
}

// seal encrypts token with AES-256-GCM under the key of session id.
func seal(id, token string) ([]byte, error) {
	aead, err := sessionAEAD(id)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal the session's token: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(token), nil), nil
}

// open is the inverse of seal.
func open(id string, sealed []byte) (string, error) {
	aead, err := sessionAEAD(id)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed token too short")
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, nil)
	if err != nil {
		return "", fmt.Errorf("open the session's token: %w", err)
	}
	return string(pt), nil
}

func sessionAEAD(id string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(sessionKey(id))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
