package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/web"
)

// revocable is the static tokens with a switch that refuses every token,
// as a deleted ServiceAccount's would be.
type revocable struct {
	*api.StaticTokens
	revoked atomic.Bool
}

func (r *revocable) Authenticate(ctx context.Context, token string) (api.User, error) {
	if r.revoked.Load() {
		return api.User{}, api.ErrUnauthenticated
	}
	return r.StaticTokens.Authenticate(ctx, token)
}

// replicas are consoles (with the API) on one read model, as the
// controller's replicas serve them behind a Service, each with its own
// server and memory.
type replicas struct {
	urls   []string
	auth   *revocable
	writer *fakeWriter
	clock  *clock
}

// newReplicas starts one console per key; equal keys make replicas of
// one deployment. A nil key is the console's random one.
func newReplicas(t *testing.T, recheck time.Duration, keys ...[]byte) *replicas {
	t.Helper()
	tokens, err := api.ParseStaticTokens(strings.NewReader(operatorToken + ",olga,operator\n" + viewerToken + ",vic,viewer\n"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := readmodel.New()
	if err != nil {
		t.Fatal(err)
	}
	seedCheckout(t, store)
	markSynced(t, store)
	rs := &replicas{auth: &revocable{StaticTokens: tokens}, writer: &fakeWriter{store: store}, clock: &clock{t: time.Now()}}
	for _, key := range keys {
		console, err := web.New(web.Options{Store: store, Authenticator: rs.auth, Authorizer: rs.auth, SessionKey: key,
			RecheckInterval: recheck, Now: rs.clock.now})
		if err != nil {
			t.Fatal(err)
		}
		apiHandler, err := api.New(api.Options{Store: store, Writer: rs.writer, Authenticator: rs.auth, Authorizer: rs.auth, Sessions: console})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/api/", apiHandler)
		mux.Handle("/", console)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		rs.urls = append(rs.urls, srv.URL)
	}
	return rs
}

var sharedKey = []byte("a shared session key of 32 bytes or more")

// signIn fetches the login form from one replica and posts it to
// another, as a Service may route the two requests.
func signIn(t *testing.T, c *http.Client, formFrom, postTo, token string) *http.Response {
	t.Helper()
	_, page := get(t, c, formFrom+"/login")
	m := hiddenCSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login form has no CSRF field:\n%s", page)
	}
	resp, err := c.PostForm(postTo+"/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	return resp
}

// TestSessionsSpanReplicas: with one key, the login form of one replica
// is good on another, and a session started on one is signed in on the
// other, pages and API alike, with its CSRF token still required for a
// write. (One cookie jar serves both: cookies are per host, not port.)
func TestSessionsSpanReplicas(t *testing.T) {
	rs := newReplicas(t, time.Minute, sharedKey, sharedKey)
	a, b := rs.urls[0], rs.urls[1]
	c := (&fixture{}).browser(t)
	if resp := signIn(t, c, a, b, operatorToken); resp.StatusCode != http.StatusSeeOther || sessionCookieOf(resp) == nil {
		t.Fatalf("form of A posted to B: %s, want 303 and a session", resp.Status)
	}
	resp, page := get(t, c, a+"/rollouts/shop/checkout-v2")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="user">olga<`) {
		t.Fatalf("A's rollout page with B's session: %s", resp.Status)
	}
	csrf := csrfOf(t, page)
	pause := b + "/api/v1/rollouts/shop/checkout-v2/pause"
	req, _ := http.NewRequest(http.MethodPost, pause, nil)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized || rs.writer.count() != 0 {
		t.Fatalf("pause on B without the CSRF header: %v %v, %d writes; want 401 and none", resp.Status, err, rs.writer.count())
	}
	req, _ = http.NewRequest(http.MethodPost, pause, nil)
	req.Header.Set("X-CSRF-Token", csrf) // from A's page
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusOK || rs.writer.count() != 1 {
		t.Fatalf("pause on B with A's CSRF token: %v %v, %d writes; want 200 and one", resp.Status, err, rs.writer.count())
	}

	// Sign-out clears the cookie and ends the session on the replica that
	// served it. A copy of the cookie stays good on the other replica
	// until it expires or its token fails the re-check: there is no
	// cluster-wide revocation (see web/session.go).
	old := c.Jar.Cookies(mustURL(t, a))
	resp, err := c.PostForm(a+"/logout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if ck := sessionCookieOf(resp); resp.StatusCode != http.StatusSeeOther || ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("logout on A: %s, cookie %+v; want 303 and the cookie cleared", resp.Status, ck)
	}
	replay := (&fixture{}).browser(t)
	replay.Jar.SetCookies(mustURL(t, a), old)
	if resp, _ := get(t, replay, a+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the copied cookie on A after signing out there: %s, want 303 to /login", resp.Status)
	}
	if resp, _ := get(t, replay, b+"/"); resp.StatusCode != http.StatusOK {
		t.Errorf("the copied cookie on B: %s, want 200 (documented: no cluster-wide revocation)", resp.Status)
	}
}

// TestSessionsNeedTheSameKey: a console with another key, or its own
// random one, takes neither the sessions nor the login forms of the
// first.
func TestSessionsNeedTheSameKey(t *testing.T) {
	rs := newReplicas(t, time.Minute, sharedKey, []byte("another deployment's key, 32 bytes+"), nil)
	for _, other := range rs.urls[1:] {
		c := (&fixture{}).browser(t)
		if resp := signIn(t, c, rs.urls[0], rs.urls[0], operatorToken); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in: %s", resp.Status)
		}
		if resp, _ := get(t, c, other+"/"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("page on a console with another key: %s, want 303 to /login", resp.Status)
		}
		if resp, _ := get(t, c, other+"/api/v1/rollouts"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("API on a console with another key: %s, want 401", resp.Status)
		}
		if resp := signIn(t, (&fixture{}).browser(t), rs.urls[0], other, operatorToken); resp.StatusCode != http.StatusForbidden || sessionCookieOf(resp) != nil {
			t.Errorf("a login form posted to a console with another key: %s, want 403 and no session", resp.Status)
		}
	}
	if _, err := web.New(web.Options{Store: mustStore(t), Authenticator: rs.auth, Authorizer: rs.auth, SessionKey: []byte("short")}); err == nil ||
		!strings.Contains(err.Error(), "too short") {
		t.Errorf("New with a 5-byte key: %v, want the key refused as too short", err)
	}
}

// TestRefusedTokenEndsTheSessionOnEveryReplica: once the token is
// refused, every replica ends the session at its next re-check, including
// one that never saw the session before (it checks a session older than
// the interval at first sight).
func TestRefusedTokenEndsTheSessionOnEveryReplica(t *testing.T) {
	const recheck = 30 * time.Second
	rs := newReplicas(t, recheck, sharedKey, sharedKey, sharedKey)
	c := (&fixture{}).browser(t)
	signIn(t, c, rs.urls[0], rs.urls[0], operatorToken)
	for _, u := range rs.urls[:2] {
		if resp, _ := get(t, c, u+"/"); resp.StatusCode != http.StatusOK {
			t.Fatalf("page on %s: %s", u, resp.Status)
		}
	}
	rs.auth.revoked.Store(true)
	if resp, _ := get(t, c, rs.urls[1]+"/"); resp.StatusCode != http.StatusOK {
		t.Errorf("page within the interval: %s, want 200 until the re-check", resp.Status)
	}
	rs.clock.add(recheck)
	for i, u := range rs.urls {
		if resp, _ := get(t, c, u+"/"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("replica %d after the re-check: %s, want 303 to /login", i, resp.Status)
		}
		if resp, _ := get(t, c, u+"/api/v1/rollouts"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("replica %d's API after the re-check: %s, want 401", i, resp.Status)
		}
	}
}

func mustStore(t *testing.T) *readmodel.Store {
	t.Helper()
	s, err := readmodel.New()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
