package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestMetricsAddrNeedsAnAuthorizedToken: with --metrics-addr, /metrics is
// served over HTTPS behind controller-runtime's secure-serving filter,
// with the controller's own RBAC (deploy/rbac.yaml): no token is 401, a
// token without get on /metrics is 403, one bound to a ClusterRole that
// grants it reads serin's metrics; and --http-addr no longer serves them.
func TestMetricsAddrNeedsAnAuthorizedToken(t *testing.T) {
	e := newEnv(t)
	metricsAddr := freeAddr(t)
	e.extraArgs = append(e.extraArgs, "--metrics-addr", metricsAddr)
	p := e.startController()

	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	must(t, err)
	token := func(sa string) string {
		_, err := kc.CoreV1().ServiceAccounts(e.ns).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		must(t, err)
		tr, err := kc.CoreV1().ServiceAccounts(e.ns).CreateToken(e.ctx, sa,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		must(t, err)
		return tr.Status.Token
	}
	role := "serin-metrics-reader-" + e.ns
	_, err = kc.RbacV1().ClusterRoles().Create(e.ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() { _ = kc.RbacV1().ClusterRoles().Delete(t.Context(), role, metav1.DeleteOptions{}) })
	_, err = kc.RbacV1().ClusterRoleBindings().Create(e.ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: e.ns}}}, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() { _ = kc.RbacV1().ClusterRoleBindings().Delete(t.Context(), role, metav1.DeleteOptions{}) })
	reader, stranger := token("prometheus"), token("stranger")

	// The certificate is self-signed without --metrics-cert-dir.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(tok string) (int, string) {
		req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		must(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	e.eventually(30*time.Second, "the authorized token to read serin's metrics", func() (bool, string) {
		code, body := get(reader)
		return code == http.StatusOK && strings.Contains(body, "serin_rollbacks_total"), tail(body, 3)
	})
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: HTTP %d, want 401", code)
	}
	if code, _ := get(stranger); code != http.StatusForbidden {
		t.Errorf("a token without get /metrics: HTTP %d, want 403", code)
	}
	resp, err := http.Get("http://" + p.addr + "/metrics")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("--http-addr still serves /metrics without authentication")
	}
}
