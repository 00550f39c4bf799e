package api_test

import (
	"errors"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api"
)

// serviceAccountToken creates ServiceAccount name in ns (when missing)
// and requests a token for it through the TokenRequest API, for
// audiences (none: the API server's own).
func serviceAccountToken(t *testing.T, ns, name string, audiences ...string) string {
	t.Helper()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	sas := kc.CoreV1().ServiceAccounts(ns)
	if _, err := sas.Get(t.Context(), name, metav1.GetOptions{}); err != nil {
		if _, err := sas.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
		}
	}
	tr, err := sas.CreateToken(t.Context(), name, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: audiences, ExpirationSeconds: ptr.To[int64](600),
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// TestKubeAuthAudiences: with audiences (--token-audiences serin), only a
// service-account token requested for serin signs in; without, the API
// server's own audiences apply, and a token for serin alone is refused.
func TestKubeAuthAudiences(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	forSerin := serviceAccountToken(t, ns, "robot", "serin")
	forAPIServer := serviceAccountToken(t, ns, "robot")
	forBoth := serviceAccountToken(t, ns, "robot", "serin", "https://kubernetes.default.svc")
	want := "system:serviceaccount:" + ns + ":robot"
	for _, tc := range []struct {
		name      string
		audiences []string
		token     string
		ok        bool
	}{
		{"serin's token, --token-audiences serin", []string{"serin"}, forSerin, true},
		{"the API server's token, --token-audiences serin", []string{"serin"}, forAPIServer, false},
		{"a token for both, --token-audiences serin", []string{"serin"}, forBoth, true},
		{"serin's token, one of two audiences", []string{"other", "serin"}, forSerin, true},
		{"serin's token, no --token-audiences", nil, forSerin, false},
		{"the API server's token, no --token-audiences", nil, forAPIServer, true},
	} {
		auth, err := api.NewKubeAuth(api.KubeAuthOptions{Client: e.kube, Audiences: tc.audiences})
		if err != nil {
			t.Fatal(err)
		}
		u, err := auth.Authenticate(t.Context(), tc.token)
		switch {
		case tc.ok && (err != nil || u.Name != want):
			t.Errorf("%s: %+v, %v; want %s", tc.name, u, err, want)
		case !tc.ok && !errors.Is(err, api.ErrUnauthenticated):
			t.Errorf("%s: %+v, %v; want ErrUnauthenticated", tc.name, u, err)
		}
	}
}
