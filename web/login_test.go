package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLoginSetsASafeSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		f := newFixture(t, secure)
		c := f.browser(t)
		resp := f.login(t, c, operatorToken)
		body(t, resp)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Fatalf("login answered %s to %q, want 303 to /", resp.Status, resp.Header.Get("Location"))
		}
		ck := sessionCookieOf(resp)
		if ck == nil {
			t.Fatal("no serin_session cookie")
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure != secure {
			t.Errorf("cookie flags HttpOnly=%v SameSite=%v Path=%q Secure=%v; want true, Strict, /, %v",
				ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure, secure)
		}
		if strings.Contains(ck.Value, operatorToken) || len(ck.Value) < 40 {
			t.Errorf("the session id %q is not an opaque random value", ck.Value)
		}
		if strings.Contains(f.logText(), operatorToken) {
			t.Error("the token was logged")
		}
		_, page := get(t, c, f.srv.URL+"/")
		// The rows are drawn by list.js from the API (TestListInBrowser).
		if !strings.Contains(page, `id="user">olga<`) || !strings.Contains(page, `id="list"`) {
			t.Errorf("after login the list page does not show the user and the list:\n%s", page)
		}
	}
}

func TestLoginRefusesABadToken(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	resp := f.login(t, c, "not-a-token")
	page := body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token answered %s, want 401", resp.Status)
	}
	if !strings.Contains(page, "That token is not valid.") || !strings.Contains(page, `name="token"`) {
		t.Errorf("the form is not shown again with the error:\n%s", page)
	}
	if sessionCookieOf(resp) != nil {
		t.Error("a bad token got a session cookie")
	}
	if strings.Contains(f.logText(), "not-a-token") {
		t.Error("the refused token was logged")
	}
}

func TestLoginNeedsTheFormsCSRFToken(t *testing.T) {
	f := newFixture(t, false)
	for name, csrf := range map[string]string{"missing": "", "forged": "AAAA"} {
		c := f.browser(t)
		get(t, c, f.srv.URL+"/login") // the pre-session cookie
		resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"csrf": {csrf}, "token": {operatorToken}})
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != http.StatusForbidden || sessionCookieOf(resp) != nil {
			t.Errorf("%s form token: %s, session cookie %v; want 403 and none", name, resp.Status, sessionCookieOf(resp))
		}
	}
}

func TestPagesNeedASession(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	resp, _ := get(t, c, f.srv.URL+"/rollouts/shop/checkout-v2")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Frollouts%2Fshop%2Fcheckout-v2" {
		t.Errorf("without a session: %s to %q, want 303 to the login form", resp.Status, resp.Header.Get("Location"))
	}
	c.Jar.SetCookies(mustURL(t, f.srv.URL), []*http.Cookie{{Name: "serin_session", Value: "made-up"}})
	if resp, _ := get(t, c, f.srv.URL+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("with an unknown session id: %s, want 303", resp.Status)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, operatorToken))
	_, page := get(t, c, f.srv.URL+"/")
	csrf := csrfOf(t, page)
	old := c.Jar.Cookies(mustURL(t, f.srv.URL))

	// Without the form's token, logout is refused (another site cannot
	// sign a user out).
	resp, err := c.PostForm(f.srv.URL+"/logout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %s, want 403", resp.Status)
	}

	resp, err = c.PostForm(f.srv.URL+"/logout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if ck := sessionCookieOf(resp); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("logout did not clear the cookie: %+v", ck)
	}
	// The old cookie is dead on this console, pages and API alike (for
	// other replicas see TestSessionsSpanReplicas).
	replay := f.browser(t)
	replay.Jar.SetCookies(mustURL(t, f.srv.URL), old)
	if resp, _ := get(t, replay, f.srv.URL+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("page with the old cookie: %s, want 303 to login", resp.Status)
	}
	if resp, _ := get(t, replay, f.srv.URL+"/api/v1/rollouts"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with the old cookie: %s, want 401", resp.Status)
	}
}

// redirectTargets are next values and where the login form may send a
// browser for them: a clean local path as it is, anything a browser could
// read as another origin (or that is not a plain path at all) as "/".
var redirectTargets = []struct{ next, want string }{
	{"/rollouts/shop/checkout-v2", "/rollouts/shop/checkout-v2"},
	{"/?namespace=shop", "/?namespace=shop"},
	{"/", "/"},
	{"", "/"},
	{"//evil.example/", "/"},
	{"/\\evil.example", "/"},
	{"https://evil.example/", "/"},
	{"http:/evil.example", "/"},
	{"javascript:alert(1)", "/"},
	{"evil.example", "/"},
	{"/\t/evil.example", "/"}, // the browser drops the tab: //evil.example
	{"/\t/\t/evil.example", "/"},
	{"\t//evil.example", "/"},
	{"/\n/evil.example", "/"},
	{"/\r\n/evil.example", "/"},
	{"/\x00/evil.example", "/"},
	{"/\x7f/evil.example", "/"},
	{"/ /evil.example", "/"},
	{"/\u00a0/evil.example", "/"},
	{"/\u2028/evil.example", "/"},
	{"/%2F%2Fevil.example", "/"},
	{"/%2f/evil.example", "/"},
	{"/%5Cevil.example", "/"},
	{"/%09/evil.example", "/"},
	{"/a\\b", "/"},
	{"/rollouts/%zz", "/"},
	{"///evil.example", "/"},
	{"/@evil.example", "/@evil.example"}, // a path on this site
}

func TestLoginRedirectStaysOnSite(t *testing.T) {
	f := newFixture(t, false)
	signedIn := f.browser(t)
	body(t, f.login(t, signedIn, viewerToken))
	for _, tc := range redirectTargets {
		c := f.browser(t)
		_, page := get(t, c, f.srv.URL+"/login")
		m := hiddenCSRF.FindStringSubmatch(page)
		form := url.Values{"csrf": {m[1]}, "token": {viewerToken}, "next": {tc.next}}
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := rawDo(t, c, req)
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != tc.want {
			t.Errorf("POST next=%q: %s to %q, want 303 to %q", tc.next, resp.Status, got, tc.want)
		}
		// Signed in already, the form redirects at once.
		req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/login?next="+url.QueryEscape(tc.next), nil)
		resp = rawDo(t, signedIn, req)
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != tc.want {
			t.Errorf("GET /login?next=%q: %s to %q, want 303 to %q", tc.next, resp.Status, got, tc.want)
		}
	}
}

// rawDo sends req with c's cookies, without the client's redirect
// handling, which refuses a Location it cannot parse before the test
// could see it.
func rawDo(t *testing.T, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	for _, ck := range c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	return resp
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestFailedSignInsAreThrottled(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	for i := range 10 {
		if resp := f.login(t, c, "not-a-token"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d: %s, want 401", i+1, resp.Status)
		}
	}
	// The eleventh attempt is refused before the token is checked, even a
	// good one; the answer says when to come back.
	resp := f.login(t, c, operatorToken)
	page := body(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || sessionCookieOf(resp) != nil {
		t.Fatalf("after 10 failures: %s, Retry-After %q, session %v; want 429 with Retry-After and no session",
			resp.Status, resp.Header.Get("Retry-After"), sessionCookieOf(resp))
	}
	if !strings.Contains(page, "Too many failed sign-ins") {
		t.Errorf("the form does not say why:\n%s", page)
	}
}
