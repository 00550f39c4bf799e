package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/api/readmodel"
	"github.com/serin-dev/serin/web"
)

// clock is a settable clock, shared by the console and KubeAuth.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// saFixture is the console and the API with KubeAuth over the real API
// server, and a ServiceAccount "robot" in a fresh namespace that may list
// rollouts there.
type saFixture struct {
	srv   *httptest.Server
	kube  client.Client
	kc    kubernetes.Interface
	ns    string
	clock *clock
}

func newSAFixture(t *testing.T, recheck time.Duration) *saFixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	kube, err := client.New(st.RESTConfig(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &saFixture{kube: kube, kc: kc, ns: "web-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + time.Now().Format("150405.000000")[7:],
		clock: &clock{t: time.Now()}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "rollout-viewer"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"serin.dev"}, Resources: []string{"rollouts"}, Verbs: []string{"get", "list"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "robot-views"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot", Namespace: f.ns}}}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "robot"}},
		role, binding,
	} {
		if err := kube.Create(t.Context(), obj); err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
	auth, err := api.NewKubeAuth(api.KubeAuthOptions{Client: kube, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	store, err := readmodel.New()
	if err != nil {
		t.Fatal(err)
	}
	markSynced(t, store)
	console, err := web.New(web.Options{Store: store, Authenticator: auth, Authorizer: auth, Now: f.clock.now, RecheckInterval: recheck})
	if err != nil {
		t.Fatal(err)
	}
	apiHandler, err := api.New(api.Options{Store: store, Writer: &fakeWriter{store: store}, Authenticator: auth, Authorizer: auth, Sessions: console})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/", console)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// token requests a token of robot that expires in ttl.
func (f *saFixture) token(t *testing.T, ttl time.Duration) string {
	t.Helper()
	tr, err := f.kc.CoreV1().ServiceAccounts(f.ns).CreateToken(t.Context(), "robot",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(ttl.Seconds()))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for robot: %v", err)
	}
	return tr.Status.Token
}

// signIn signs c in with token and waits until robot's Role lets it see
// the namespace's list page. It returns the sign-in's answer.
func (f *saFixture) signIn(t *testing.T, c *http.Client, token string) *http.Response {
	t.Helper()
	login := (&fixture{srv: f.srv}).login(t, c, token)
	body(t, login)
	if login.StatusCode != http.StatusSeeOther || sessionCookieOf(login) == nil {
		t.Fatalf("sign-in with robot's token: %s, want 303 and a session", login.Status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := get(t, c, f.listURL())
		if resp.StatusCode == http.StatusOK {
			return login
		}
		if time.Now().After(deadline) {
			t.Fatalf("robot's list page: %s 10 s after sign-in, want 200", resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *saFixture) listURL() string { return f.srv.URL + "/?namespace=" + f.ns }

// TestSessionEndsWhenItsServiceAccountIsDeleted signs in with a
// ServiceAccount's token and deletes the ServiceAccount: the next page
// after the re-check interval goes to the login form, and the API no
// longer takes the session's cookie.
func TestSessionEndsWhenItsServiceAccountIsDeleted(t *testing.T) {
	const recheck = 30 * time.Second
	f := newSAFixture(t, recheck)
	c := (&fixture{}).browser(t)
	f.signIn(t, c, f.token(t, time.Hour))
	if err := f.kube.Delete(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "robot"}}); err != nil {
		t.Fatal(err)
	}
	// Within the interval the session is not checked again.
	if resp, _ := get(t, c, f.listURL()); resp.StatusCode != http.StatusOK {
		t.Fatalf("page right after the deletion: %s, want 200 until the re-check", resp.Status)
	}
	// After it, the token is refused (as soon as the API server has seen
	// the deletion, and its own cache of accepted tokens has expired: 10 s
	// by default) and the session ends.
	deadline := time.Now().Add(20 * time.Second)
	for {
		f.clock.add(recheck)
		resp, _ := get(t, c, f.listURL())
		if resp.StatusCode == http.StatusSeeOther {
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
				t.Fatalf("page after the re-check redirects to %q, want the login form", loc)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("page 20 s after the ServiceAccount was deleted: %s, want 303 to /login", resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, _ := get(t, c, f.srv.URL+"/api/v1/rollouts?namespace="+f.ns); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with the ended session's cookie: %s, want 401", resp.Status)
	}
}

// TestSessionEndsWhenItsTokenExpires: a session signed in with a bound
// token that expires in 10 minutes ends then, not 8 hours later, even
// without a re-check.
func TestSessionEndsWhenItsTokenExpires(t *testing.T) {
	f := newSAFixture(t, 24*time.Hour)
	c := (&fixture{}).browser(t)
	token := f.token(t, 10*time.Minute)
	exp, ok := api.TokenExpiry(token)
	if !ok {
		t.Fatal("a bound service-account token has no exp")
	}
	ck := sessionCookieOf(f.signIn(t, c, token))
	if ck.MaxAge <= 0 || ck.MaxAge > int(time.Until(exp).Seconds())+1 {
		t.Fatalf("session cookie Max-Age %d, want at most the token's %v", ck.MaxAge, time.Until(exp).Round(time.Second))
	}
	f.clock.add(time.Until(exp) - time.Minute)
	if resp, _ := get(t, c, f.listURL()); resp.StatusCode != http.StatusOK {
		t.Fatalf("page a minute before the token expires: %s, want 200", resp.Status)
	}
	f.clock.add(2 * time.Minute)
	if resp, _ := get(t, c, f.listURL()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("page a minute after the token expired: %s, want 303 to /login", resp.Status)
	}
}
