package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
)

// countingClient counts the objects it creates: the reviews.
type countingClient struct {
	client.Client
	creates atomic.Int32
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.creates.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

// grant gives user get, list and patch on rollouts in ns through a Role
// and a RoleBinding.
func (e *env) grant(t *testing.T, ns, user string) {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rollout-operator"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"serin.dev"}, Resources: []string{"rollouts"}, Verbs: []string{"get", "list", "patch"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rollout-operator-" + user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}}
	for _, obj := range []client.Object{role, binding} {
		if err := e.kube.Create(t.Context(), obj); err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
}

// kubeAuthEnv makes a namespace holding rollout "a", where alice has a
// Role on rollouts and bob has nothing, and serves the API with
// TokenReview and SubjectAccessReview against the real API server.
func (e *env) kubeAuthEnv(t *testing.T, heartbeat time.Duration) (string, *env) {
	t.Helper()
	ns := e.namespace(t)
	e.mustCreate(t, ns, "a", "vs-a")
	e.grant(t, ns, "alice")
	return ns, e.kubeAuthServer(t, heartbeat)
}

// kubeAuthServer serves the API with TokenReview and SubjectAccessReview
// against the real API server, over e's read model.
func (e *env) kubeAuthServer(t *testing.T, heartbeat time.Duration) *env {
	t.Helper()
	auth, err := api.NewKubeAuth(api.KubeAuthOptions{Client: e.kube})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Store: e.store, Writer: api.KubeWriter{Client: e.kube}, Workloads: api.KubeWriter{Client: e.kube},
		Authenticator: auth, Authorizer: auth, Heartbeat: heartbeat})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{srv: srv, kube: e.kube, store: e.store}
}

// TestKubeAuth runs the handler with TokenReview and SubjectAccessReview
// against the real API server: alice has a Role on rollouts in ns, bob
// has nothing.
func TestKubeAuth(t *testing.T) {
	e := getEnv(t)
	ns, k := e.kubeAuthEnv(t, 0)
	alice, bob := st.Token("alice"), st.Token("bob")
	get, abortPath := "/api/v1/rollouts/"+ns+"/a", "/api/v1/rollouts/"+ns+"/a/abort"

	// RBAC reaches the authorizer through its informers: wait for it.
	eventually(t, "alice's Role to take effect", func() bool {
		return k.call(t, http.MethodGet, get, alice, nil).status == http.StatusOK
	})
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"bob reads", http.MethodGet, get, bob, http.StatusForbidden},
		{"bob lists", http.MethodGet, "/api/v1/rollouts?namespace=" + ns, bob, http.StatusForbidden},
		{"bob aborts", http.MethodPost, abortPath, bob, http.StatusForbidden},
		{"alice lists", http.MethodGet, "/api/v1/rollouts?namespace=" + ns, alice, http.StatusOK},
		{"alice lists everywhere", http.MethodGet, "/api/v1/rollouts", alice, http.StatusForbidden},
		{"alice creates", http.MethodPost, "/api/v1/rollouts", alice, http.StatusForbidden},
		{"invalid token", http.MethodGet, get, "not-a-token", http.StatusUnauthorized},
		{"invalid token aborts", http.MethodPost, abortPath, "not-a-token", http.StatusUnauthorized},
		{"alice aborts", http.MethodPost, abortPath, alice, http.StatusOK},
	} {
		body := `{"reason":"bad canary"}`
		if tc.path == "/api/v1/rollouts" {
			body = createBody(ns, "b", "vs-b")
		}
		r := k.call(t, tc.method, tc.path, tc.token, strings.NewReader(body))
		if r.status != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.want, r.body)
		}
	}
	if got := e.stored(t, ns); len(got) != 1 || got[0].Annotations["serin.dev/abort-by"] != "alice" {
		t.Errorf("stored = %+v, want one rollout aborted by alice", got)
	}
}

func TestKubeAuthCache(t *testing.T) {
	e := getEnv(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cc := &countingClient{Client: e.kube}
	auth, err := api.NewKubeAuth(api.KubeAuthOptions{Client: cc, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	authn := func(token string) (api.User, error) { return auth.Authenticate(t.Context(), token) }
	for range 3 {
		if u, err := authn(st.Token("alice")); err != nil || u.Name != "alice" || len(u.Groups) == 0 {
			t.Fatalf("Authenticate(alice) = %+v, %v", u, err)
		}
	}
	if n := cc.creates.Load(); n != 1 {
		t.Errorf("%d TokenReviews for three calls within the TTL, want 1", n)
	}
	now = now.Add(api.DefaultTokenCacheTTL)
	_, _ = authn(st.Token("alice"))
	if n := cc.creates.Load(); n != 2 {
		t.Errorf("%d TokenReviews after the TTL, want 2", n)
	}
	for range 3 {
		if _, err := authn("not-a-token"); !errors.Is(err, api.ErrUnauthenticated) {
			t.Fatalf("invalid token: err = %v", err)
		}
	}
	if n := cc.creates.Load(); n != 3 {
		t.Errorf("%d TokenReviews, want 3: a refusal is remembered for its TTL", n)
	}
	now = now.Add(api.DefaultFailedTokenTTL)
	if _, err := authn("not-a-token"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("invalid token after the TTL: err = %v", err)
	}
	if n := cc.creates.Load(); n != 4 {
		t.Errorf("%d TokenReviews after the refusal's TTL, want 4", n)
	}
	if _, err := api.NewKubeAuth(api.KubeAuthOptions{}); err == nil {
		t.Error("NewKubeAuth without a client: no error")
	}
}

// TestStreamEndsWhenAccessIsRevoked opens alice's event stream, then
// deletes her RoleBinding: the stream must end, since each heartbeat
// authorizes her again with a SubjectAccessReview.
func TestStreamEndsWhenAccessIsRevoked(t *testing.T) {
	e := getEnv(t)
	ns, k := e.kubeAuthEnv(t, 100*time.Millisecond)
	srv := k.srv
	path := "/api/v1/rollouts/" + ns + "/a/events"
	eventually(t, "alice's Role to take effect", func() bool {
		return k.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/a", st.Token("alice"), nil).status == http.StatusOK
	})
	s := e.openStream(t, srv.URL, path, st.Token("alice"))
	pings := 0
	for ev := range s.events {
		if ev.Name == "rollout" {
			continue
		}
		if pings++; pings == 2 { // still allowed: the stream goes on
			binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rollout-operator-alice"}}
			if err := e.kube.Delete(t.Context(), binding); err != nil {
				t.Fatal(err)
			}
		}
		if pings > 300 { // 30 s of heartbeats
			t.Fatal("the stream still runs 30 s after alice's RoleBinding was deleted")
		}
	}
	if pings < 2 {
		t.Fatalf("the stream ended after %d heartbeats, before access was revoked", pings)
	}
	if r := k.call(t, http.MethodGet, path, st.Token("alice"), nil); r.status != http.StatusForbidden {
		t.Errorf("reopening the stream: status %d, want 403", r.status)
	}
}
