package main

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/test/stack"
)

var (
	pluginRBACOnce sync.Once
	pluginRBACErr  error
)

// installUserRoles applies deploy/rbac-aggregated.yaml and aggregates it
// into Kubernetes' view and edit roles, once per test binary.
func (e *cliEnv) installUserRoles(t testing.TB) {
	t.Helper()
	pluginRBACOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if pluginRBACErr = st.ApplyYAML(ctx, filepath.Join(stack.RepoRoot(), "deploy", "rbac-aggregated.yaml")); pluginRBACErr != nil {
			return
		}
		pluginRBACErr = aggregateClusterRoles(ctx, e.kube)
	})
	if pluginRBACErr != nil {
		t.Fatalf("install deploy/rbac-aggregated.yaml: %v", pluginRBACErr)
	}
}

// aggregateClusterRoles stands in for kube-controller-manager's
// clusterrole-aggregation controller, which the test stack does not run
// (it runs no controller manager): every ClusterRole with an
// aggregationRule gets the rules of the ClusterRoles its selectors match,
// over again until nothing changes, since edit aggregates view (labelled
// aggregate-to-edit), which aggregates serin-view. It goes by the labels
// alone, as the controller does, so a wrong label fails the tests.
func aggregateClusterRoles(ctx context.Context, kube client.Client) error {
	for range 5 {
		var l rbacv1.ClusterRoleList
		if err := kube.List(ctx, &l); err != nil {
			return err
		}
		changed := false
		for i := range l.Items {
			cr := &l.Items[i]
			if cr.AggregationRule == nil {
				continue
			}
			var rules []rbacv1.PolicyRule
			for _, sel := range cr.AggregationRule.ClusterRoleSelectors {
				s, err := metav1.LabelSelectorAsSelector(&sel)
				if err != nil {
					return err
				}
				for _, o := range l.Items {
					if o.Name == cr.Name || !s.Matches(labels.Set(o.Labels)) {
						continue
					}
					for _, r := range o.Rules {
						if !slices.ContainsFunc(rules, func(have rbacv1.PolicyRule) bool { return reflect.DeepEqual(have, r) }) {
							rules = append(rules, r)
						}
					}
				}
			}
			if reflect.DeepEqual(cr.Rules, rules) {
				continue
			}
			cr.Rules = rules
			if err := kube.Update(ctx, cr); err != nil {
				return fmt.Errorf("aggregate ClusterRole %s: %w", cr.Name, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("the ClusterRoles' aggregation did not settle")
}

// pluginUser is a ServiceAccount of the test's namespace with a kubeconfig
// of its own, whose context's namespace is that namespace.
type pluginUser struct {
	name       string // as the API server sees it: system:serviceaccount:NS:NAME
	kubeconfig string
}

// newPluginUser creates ServiceAccount ns/name, binds it in ns to each of
// clusterRoles, and writes its kubeconfig. It returns once the API server
// allows the user every one of allowed ("get rollouts", "patch
// deployments.apps"...), so that RBAC's cache cannot make a test flaky.
func (e *cliEnv) newPluginUser(t testing.TB, ns, name string, clusterRoles []string, allowed ...[2]string) pluginUser {
	t.Helper()
	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := e.kube.Create(ctx, sa); err != nil {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
	for _, role := range clusterRoles {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		if err := e.kube.Create(ctx, rb); err != nil {
			t.Fatalf("bind %s to %s in %s: %v", name, role, ns, err)
		}
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := e.kube.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("token of %s/%s: %v", ns, name, err)
	}
	cfg, err := clientcmd.LoadFromFile(st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Token = tr.Status.Token
	}
	for _, c := range cfg.Contexts {
		c.Namespace = ns
	}
	u := pluginUser{name: "system:serviceaccount:" + ns + ":" + name, kubeconfig: filepath.Join(t.TempDir(), name+".kubeconfig")}
	if err := clientcmd.WriteToFile(*cfg, u.kubeconfig); err != nil {
		t.Fatal(err)
	}
	for _, a := range allowed {
		verb, resource := a[0], a[1]
		res, group, _ := strings.Cut(resource, ".") // "deployments.apps"
		if res == "rollouts" {
			group = "serin.dev"
		}
		eventually(t, fmt.Sprintf("RBAC to allow %s %s %s", u.name, verb, resource), func() bool {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User: u.name, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: res},
			}}
			return e.kube.Create(ctx, sar) == nil && sar.Status.Allowed
		})
	}
	return u
}

// run runs `kubectl serin args...` as u, with u's kubeconfig.
func (u pluginUser) run(t testing.TB, args ...string) result {
	t.Helper()
	return runPluginWith(t, append(args, "--kubeconfig", u.kubeconfig)...)
}

// runPluginWith runs `kubectl serin args...` in the test's process.
func runPluginWith(t testing.TB, args ...string) result {
	t.Helper()
	var stdout, stderr lockedBuffer
	code := pluginMain(t.Context(), args, cli{}.io(&stdout, &stderr))
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
