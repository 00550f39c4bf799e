package web_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/web"
)

const wantCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func TestEveryAnswerSendsTheSecurityHeaders(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	anon := f.browser(t)
	body(t, f.login(t, c, operatorToken))
	for _, tc := range []struct {
		client *http.Client
		path   string
		status int
	}{
		{anon, "/login", 200}, {anon, "/", 303}, {c, "/", 200}, {c, "/rollouts/shop/checkout-v2", 200},
		{c, "/rollouts/shop/nope", 404}, {c, "/no/such/page", 404}, {c, "/static/console.css", 200},
		{c, "/static/rollout.js", 200}, {c, "/static/", 404},
	} {
		resp, _ := get(t, tc.client, f.srv.URL+tc.path)
		h := resp.Header
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: %s, want %d", tc.path, resp.Status, tc.status)
		}
		if h.Get("Content-Security-Policy") != wantCSP || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers CSP=%q nosniff=%q referrer=%q", tc.path, h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
	}
}

func TestPagesHaveNoInlineScriptOrStyle(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, operatorToken))
	for _, path := range []string{"/", "/rollouts/shop/checkout-v2", "/no/such/page"} {
		_, page := get(t, c, f.srv.URL+path)
		for _, bad := range []string{"<script>", " style=", "<style", "onclick=", "javascript:"} {
			if strings.Contains(page, bad) {
				t.Errorf("%s contains %q, which the CSP forbids", path, bad)
			}
		}
	}
}

func TestRolloutPageRendersTheRollout(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, operatorToken))
	_, page := get(t, c, f.srv.URL+"/rollouts/shop/checkout-v2")
	for _, want := range []string{
		`<li class="step done">10%</li>`, `<li class="step current">25%</li>`, `<li class="step todo">100%</li>`,
		`id="weight">25%<`, `id="stable-weight">75%<`, "checkout: v1 → v2", `data-rv="7"`,
		`id="op-pause"`, `id="op-resume"`, `id="op-promote"`, `id="op-abort"`, `id="op-retry"`, `id="confirm-dialog"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("rollout page lacks %q", want)
		}
	}
}

func TestViewerSeesNoButtons(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, viewerToken))
	resp, page := get(t, c, f.srv.URL+"/rollouts/shop/checkout-v2")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("viewer's rollout page: %s", resp.Status)
	}
	for _, bad := range []string{"data-op=", "abort-form", `id="controls"`} {
		if strings.Contains(page, bad) {
			t.Errorf("the viewer's page contains %q", bad)
		}
	}
	if !strings.Contains(page, `id="weight">25%<`) {
		t.Error("the viewer does not see the rollout")
	}
}

// TestAPIThroughTheSessionNeedsCSRF: the session cookie alone is enough
// to read, but a mutation needs the X-CSRF-Token header with the
// session's token, and nothing is written without it.
func TestAPIThroughTheSessionNeedsCSRF(t *testing.T) {
	f := newFixture(t, false)
	c := f.browser(t)
	body(t, f.login(t, c, operatorToken))
	_, page := get(t, c, f.srv.URL+"/")
	csrf := csrfOf(t, page)
	if resp, _ := get(t, c, f.srv.URL+"/api/v1/rollouts/shop/checkout-v2"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET through the session: %s, want 200", resp.Status)
	}
	pause := f.srv.URL + "/api/v1/rollouts/shop/checkout-v2/pause"
	for name, header := range map[string]string{"without": "", "with a wrong": csrf + "x"} {
		req, _ := http.NewRequest(http.MethodPost, pause, nil)
		if header != "" {
			req.Header.Set("X-CSRF-Token", header)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		text := body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(text, "X-CSRF-Token") {
			t.Errorf("POST %s X-CSRF-Token: %s %s, want 401 naming the header", name, resp.Status, text)
		}
	}
	if n := f.writer.count(); n != 0 {
		t.Fatalf("refused requests wrote %d times", n)
	}
	req, _ := http.NewRequest(http.MethodPost, pause, nil)
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if text := body(t, resp); resp.StatusCode != http.StatusOK || f.writer.count() != 1 {
		t.Errorf("POST with the header: %s %s, %d writes; want 200 and one write", resp.Status, text, f.writer.count())
	}
}

// TestSessionsExpire drives sessions with a fake clock through
// AuthenticateRequest, the API's seam: a session ends at its TTL. Its
// cookie is the session, so MaxSessions bounds only what the replica
// notes of sessions: a session whose note was dropped stays signed in.
func TestSessionsExpire(t *testing.T) {
	tokens, _ := api.ParseStaticTokens(strings.NewReader(operatorToken + ",olga,operator\n"))
	store, _ := readmodel.New()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	console, err := web.New(web.Options{Store: store, Authenticator: tokens, Authorizer: tokens,
		SessionTTL: time.Hour, MaxSessions: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{srv: httptest.NewServer(console)}
	t.Cleanup(f.srv.Close)
	check := func(id string) (bool, error) {
		req, _ := http.NewRequest(http.MethodGet, "/api/v1/rollouts", nil)
		req.AddCookie(&http.Cookie{Name: "serin_session", Value: id})
		_, found, err := console.AuthenticateRequest(req)
		return found, err
	}
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, f.sessionID(t))
		now = now.Add(time.Minute)
		for _, id := range ids {
			_, _ = check(id)
		}
	}
	for i, id := range ids {
		if found, err := check(id); !found || err != nil {
			t.Errorf("session %d of 3 with notes on 2: found=%v err=%v, want signed in", i+1, found, err)
		}
	}
	now = now.Add(time.Hour - 2*time.Minute)
	if found, err := check(ids[0]); !found || !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("after the TTL: found=%v err=%v, want ErrUnauthenticated", found, err)
	}
	if _, err := check(ids[2]); err != nil {
		t.Errorf("newest session, 2 minutes before its TTL: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, "/api/v1/rollouts", nil)
	if _, found, err := console.AuthenticateRequest(req); found || err != nil {
		t.Errorf("no cookie: found=%v err=%v, want not found", found, err)
	}
}

// sessionID signs in as the operator and returns the session id.
func (f *fixture) sessionID(t *testing.T) string {
	t.Helper()
	resp := f.login(t, f.browser(t), operatorToken)
	body(t, resp)
	ck := sessionCookieOf(resp)
	if ck == nil {
		t.Fatalf("login: %s, no session", resp.Status)
	}
	return ck.Value
}

func TestNewRefusesMissingOptions(t *testing.T) {
	_, err := web.New(web.Options{})
	if err == nil || !strings.Contains(err.Error(), "Store, Authenticator, Authorizer") {
		t.Errorf("New without options: %v", err)
	}
}
