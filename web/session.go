package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
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

// Sessions are stateless: the session cookie is the session, sealed with
// AES-256-GCM under a key derived from the console's session key
// (Options.SessionKey), so that any replica holding the same key serves
// it, and a restart keeps it. The browser cannot read or change what it
// holds: the user, the sign-in token (to check it again), the CSRF token,
// and when the session began and ends.
//
// What each replica keeps in memory is only what it has learned of a
// session (see sessionNote): when it last checked the token, and whether
// the session was signed out or refused here. Compared with the former
// in-memory table, the TTL, the token's expiry, the re-check of the token
// every RecheckInterval (on every replica) and the CSRF token checked on
// every write stay as they were. What changes is sign-out: it clears the
// cookie in the browser and ends the session on the replica that served
// it, but a copy of the cookie stays valid on the other replicas until
// the session expires or its token stops passing the re-check. There is
// no cluster-wide revocation list; revoke the token (delete the
// ServiceAccount or its token, or the line of the static token file) to
// end a session everywhere within RecheckInterval.

// sessionFormat is the first byte of a sealed session cookie; a new
// format gets a new byte (and a new key label, see deriveKeys).
const sessionFormat = 1

// maxSessionCookieBytes bounds the session cookie's value: browsers keep
// a cookie of up to 4096 bytes, name and attributes included.
const maxSessionCookieBytes = 3900

// errTokenTooLong is returned when a token does not fit in a session
// cookie.
var errTokenTooLong = errors.New("the token is too long to keep in a session cookie")

// session is one signed-in browser, as its cookie says.
type session struct {
	id      string // random; names the session in a replica's notes
	user    api.User
	csrf    string
	token   string // the sign-in token, to check it again
	issued  time.Time
	expires time.Time
}

// sessionClaims is the sealed content of a session cookie.
type sessionClaims struct {
	ID      string   `json:"id"`
	CSRF    string   `json:"csrf"`
	Token   string   `json:"tok"`
	User    api.User `json:"user"`
	Issued  int64    `json:"iat"` // Unix seconds
	Expires int64    `json:"exp"`
}

// sessionNote is what one replica has learned of a session.
type sessionNote struct {
	checked time.Time // when this replica last checked its token; zero: never
	ended   bool      // signed out or refused here
	expires time.Time
}

// sessions seals and opens session cookies, and keeps this replica's
// notes on them, at most limit.
type sessions struct {
	keys  consoleKeys
	ttl   time.Duration
	limit int
	now   func() time.Time

	mu    sync.Mutex
	notes map[string]*sessionNote // by session id
}

func newSessions(keys consoleKeys, ttl time.Duration, limit int, now func() time.Time) *sessions {
	return &sessions{keys: keys, ttl: ttl, limit: limit, now: now, notes: map[string]*sessionNote{}}
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
// cookie value. The session lasts the TTL, or less when the token says it
// expires sooner (api.TokenExpiry; never longer). A token too long for a
// cookie is errTokenTooLong.
func (s *sessions) create(u api.User, token string) (string, *session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	sess := &session{id: id, user: u, csrf: csrf, token: token, issued: now.Truncate(time.Second), expires: now.Add(s.ttl)}
	if exp, ok := api.TokenExpiry(token); ok && exp.Before(sess.expires) {
		sess.expires = exp
	}
	value, err := s.seal(sess)
	if err != nil {
		return "", nil, err
	}
	return value, sess, nil
}

// seal encodes sess as a cookie value: base64url of the format byte, the
// nonce and the AES-GCM ciphertext of its claims, with the cookie's name
// as associated data so that no other sealed value passes for a session.
func (s *sessions) seal(sess *session) (string, error) {
	plain, err := json.Marshal(sessionClaims{ID: sess.id, CSRF: sess.csrf, Token: sess.token, User: sess.user,
		Issued: sess.issued.Unix(), Expires: sess.expires.Unix()})
	if err != nil {
		return "", fmt.Errorf("encode the session: %w", err)
	}
	aead := s.keys.session
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sessionFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return "", fmt.Errorf("seal the session: %w", err)
	}
	out = aead.Seal(out, out[1:], plain, []byte(sessionCookie))
	value := base64.RawURLEncoding.EncodeToString(out)
	if len(value) > maxSessionCookieBytes {
		return "", fmt.Errorf("%d bytes sealed, at most %d: %w", len(value), maxSessionCookieBytes, errTokenTooLong)
	}
	return value, nil
}

// open is the inverse of seal: an error for anything this key did not
// seal, or that was changed since.
func (s *sessions) open(value string) (*session, error) {
	if len(value) > maxSessionCookieBytes {
		return nil, errors.New("session cookie too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("session cookie: %w", err)
	}
	aead := s.keys.session
	if len(raw) < 1+aead.NonceSize() || raw[0] != sessionFormat {
		return nil, errors.New("session cookie: not a sealed session")
	}
	nonce, ct := raw[1:1+aead.NonceSize()], raw[1+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, []byte(sessionCookie))
	if err != nil {
		return nil, fmt.Errorf("session cookie: %w", err)
	}
	var c sessionClaims
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("session cookie: %w", err)
	}
	return &session{id: c.ID, user: c.User, csrf: c.CSRF, token: c.Token,
		issued: time.Unix(c.Issued, 0), expires: time.Unix(c.Expires, 0)}, nil
}

// get returns the live session of cookie value, or nil: one this key
// sealed, not expired (by its own end, or by this console's TTL from its
// start, whichever comes first), and not ended on this replica.
func (s *sessions) get(value string) *session {
	sess, err := s.open(value)
	if err != nil {
		return nil
	}
	now := s.now()
	if !now.Before(sess.expires) || !now.Before(sess.issued.Add(s.ttl)) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.notes[sess.id]; ok && n.ended {
		return nil
	}
	return sess
}

// end ends sess on this replica: signed out, or its token refused.
func (s *sessions) end(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note(sess).ended = true
}

// claimCheck reports whether sess's token is due for another check at
// now, at most every interval since this replica last checked it (or
// since the session began, when this replica has not), and if so marks it
// checked, so that concurrent requests do not all check it.
func (s *sessions) claimCheck(sess *session, now time.Time, interval time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.note(sess)
	last := sess.issued
	if n.checked.After(last) {
		last = n.checked
	}
	if now.Sub(last) < interval {
		return false
	}
	n.checked = now
	return true
}

// note returns this replica's note on sess, making one. When the notes
// are full, expired ones go first, then the longest unchecked of those not
// ended, and only then an ended one, closest to expiry: forgetting a check
// costs one more check, forgetting a sign-out lets a copied cookie back in
// here. The caller holds mu.
func (s *sessions) note(sess *session) *sessionNote {
	if n, ok := s.notes[sess.id]; ok {
		return n
	}
	if len(s.notes) >= s.limit {
		s.evict(s.now())
	}
	n := &sessionNote{expires: sess.expires}
	s.notes[sess.id] = n
	return n
}

// evict makes room for one note. The caller holds mu.
func (s *sessions) evict(now time.Time) {
	var victim string
	var vEnded bool
	var vTime time.Time
	for id, n := range s.notes {
		if !now.Before(n.expires) {
			delete(s.notes, id)
			continue
		}
		t := n.checked
		if n.ended {
			t = n.expires
		}
		if victim == "" || (vEnded && !n.ended) || (vEnded == n.ended && t.Before(vTime)) {
			victim, vEnded, vTime = id, n.ended, t
		}
	}
	if len(s.notes) >= s.limit && victim != "" {
		delete(s.notes, victim)
	}
}

// session returns the request's live session, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	return c.liveSession(r, ck.Value)
}

// liveSession returns the session of cookie value when it has not expired
// and its token still authenticates as its user, or nil. The token is
// checked again at most every RecheckInterval on each replica, so that a
// session ends soon after its ServiceAccount is deleted or its token
// revoked. A check that cannot be made (the API server is unreachable)
// keeps the session and is logged; a refusal ends it.
func (c *Console) liveSession(r *http.Request, value string) *session {
	s := c.sessions.get(value)
	if s == nil || !c.sessions.claimCheck(s, c.opts.Now(), c.opts.RecheckInterval) {
		return s
	}
	u, err := c.opts.Authenticator.Authenticate(r.Context(), s.token)
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
	c.sessions.end(s)
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
