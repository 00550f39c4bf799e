package web_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/web"
)

const (
	operatorToken = "op-secret-token-0123456789"
	viewerToken   = "viewer-secret-token-0123456789"
)

// fakeWriter records the API's writes; the tests check that refused
// requests wrote nothing.
type fakeWriter struct {
	mu      sync.Mutex
	updates []string
	store   *readmodel.Store
}

func (f *fakeWriter) Create(_ context.Context, r *v1alpha1.Rollout, _ bool) (*v1alpha1.Rollout, error) {
	return nil, errors.New("not used")
}

func (f *fakeWriter) Update(_ context.Context, ns, name string, mutate func(*v1alpha1.Rollout) error) (*v1alpha1.Rollout, error) {
	r, ok := f.store.Get(ns, name)
	if !ok {
		return nil, errors.New("not found")
	}
	if err := mutate(r); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, ns+"/"+name)
	return r, nil
}

func (f *fakeWriter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.updates)
}

// fixture is the console and the API on one server, as the controller
// serves them.
type fixture struct {
	srv    *httptest.Server
	store  *readmodel.Store
	writer *fakeWriter
	logs   *bytes.Buffer
	logMu  *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newFixture(t *testing.T, secure bool) *fixture {
	t.Helper()
	return newFixtureWith(t, secure, seedCheckout)
}

// seedCheckout stores shop/checkout-v2, a rollout at its second step
// with two checks.
func seedCheckout(t testing.TB, store *readmodel.Store) {
	t.Helper()
	started := metav1.NewTime(time.Now().Add(-3 * time.Minute))
	if err := store.Upsert(&v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2", CreationTimestamp: started, ResourceVersion: "7"},
		Spec:       v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2"},
		Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseProgressing, CurrentStep: 1, CanaryWeight: 25, Message: "step 2 of 4",
			Analysis: v1alpha1.AnalysisStatus{LastVerdict: "Pass", Checks: []v1alpha1.CheckStatus{
				{Check: "error-rate", Source: "prometheus", Verdict: "Pass", Canary: 0.4, Stable: 0.3, Limit: 1, Unit: "%"},
				{Check: "latency-p99", Hop: "checkout → payments", Source: "jaeger", Verdict: "Fail", Canary: 320, Stable: 80, Limit: 120, Unit: "ms", TraceID: "abc123"},
			}},
			History: []v1alpha1.Transition{{Time: started, From: "Progressing/0 (10%)", To: "Progressing/1 (25%)", Reason: "StepAdvanced", Message: "analysis passed"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

// newFixtureWith is newFixture with the read model holding what seed
// stores.
func newFixtureWith(t testing.TB, secure bool, seed func(testing.TB, *readmodel.Store)) *fixture {
	t.Helper()
	return newFixtureWrapped(t, secure, seed, fixtureOptions{})
}

// fixtureOptions are the rest of a fixture's parts.
type fixtureOptions struct {
	// wrap is what the server answers through (nil: none), so that a
	// test can hold or reorder the API's answers as a slow network would.
	wrap func(http.Handler) http.Handler
	// traces reads the example traces of checks (nil: none).
	traces api.TraceReader
}

// newFixtureWrapped is newFixtureWith with the parts in o.
func newFixtureWrapped(t testing.TB, secure bool, seed func(testing.TB, *readmodel.Store), o fixtureOptions) *fixture {
	t.Helper()
	tokens, err := api.ParseStaticTokens(strings.NewReader(operatorToken + ",olga,operator\n" + viewerToken + ",vic,viewer\n"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := readmodel.New()
	if err != nil {
		t.Fatal(err)
	}
	seed(t, store)
	markSynced(t, store)
	f := &fixture{store: store, writer: &fakeWriter{store: store}, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	log := slog.New(slog.NewTextHandler(lockedWriter{f.logMu, f.logs}, nil))
	console, err := web.New(web.Options{Store: store, Authenticator: tokens, Authorizer: tokens, SecureCookies: secure, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	apiHandler, err := api.New(api.Options{Store: store, Writer: f.writer, Authenticator: tokens, Authorizer: tokens, Sessions: console, Traces: o.traces, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/", console)
	var h http.Handler = mux
	if o.wrap != nil {
		h = o.wrap(mux)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		f.srv.CloseClientConnections() // a browser's event streams
		f.srv.Close()
	})
	return f
}

func (f *fixture) logText() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs.String()
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that the tests see them.
func (f *fixture) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body(t, resp)
}

// login fetches the form and posts token with the form's CSRF token.
func (f *fixture) login(t *testing.T, c *http.Client, token string) *http.Response {
	t.Helper()
	_, page := get(t, c, f.srv.URL+"/login")
	m := hiddenCSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login form has no CSRF field:\n%s", page)
	}
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// csrfOf returns the session's CSRF token from a page's <meta> tag.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no csrf-token meta tag")
	}
	return m[1]
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "serin_session" {
			return c
		}
	}
	return nil
}

// syncedInformers is just enough of a controller-runtime cache for
// readmodel.Feed to mark the store synced without an API server.
type syncedInformers struct{ cache.Informers }

func (syncedInformers) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return syncedInformer{}, nil
}

type syncedInformer struct{ cache.Informer }

func (syncedInformer) AddEventHandler(toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return syncedRegistration{}, nil
}

type syncedRegistration struct {
	toolscache.ResourceEventHandlerRegistration
}

func (syncedRegistration) HasSynced() bool { return true }

func markSynced(t testing.TB, store *readmodel.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := store.Feed(ctx, syncedInformers{}, nil); err != nil {
		t.Fatal(err)
	}
	for !store.Synced() {
		time.Sleep(time.Millisecond)
	}
}
