package helm_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/serin-dev/serin/test/stack"
)

// rbacKinds are the kinds whose content must agree between the chart and
// deploy/rbac.yaml.
var rbacKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// TestRBACMatchesKustomize: released as serin in serin-system with every
// part that needs a permission on (two replicas, notifications), the chart
// has exactly the ServiceAccount, roles and bindings of deploy/rbac.yaml
// (the controller's) and deploy/rbac-aggregated.yaml (the users' serin-view
// and serin-edit), by name and namespace, with equal rules, aggregation
// labels, role references and subjects; so neither can gain or lose a
// permission without the other.
func TestRBACMatchesKustomize(t *testing.T) {
	kust := append(readObjects(t, filepath.Join(stack.RepoRoot(), "deploy", "rbac.yaml")),
		readObjects(t, filepath.Join(stack.RepoRoot(), "deploy", "rbac-aggregated.yaml"))...)
	chart := render(t, "-f", testdata("ha.yaml"), "--set", "notifications.existingSecret=serin-notify")
	if got, want := rbacIDs(chart), rbacIDs(kust); !slices.Equal(got, want) {
		t.Fatalf("chart RBAC objects %v, deploy/rbac.yaml %v", got, want)
	}
	for _, k := range kust {
		c := chart.must(t, k.GetKind(), k.GetName())
		if c.GetNamespace() != k.GetNamespace() {
			t.Errorf("%s %s in namespace %q, deploy/rbac.yaml %q", k.GetKind(), k.GetName(), c.GetNamespace(), k.GetNamespace())
		}
		switch k.GetKind() {
		case "ClusterRole", "Role":
			var kr, cr rbacv1.ClusterRole // a Role's rules have the same shape
			into(t, withKind(k, "ClusterRole"), &kr)
			into(t, withKind(c, "ClusterRole"), &cr)
			if !reflect.DeepEqual(kr.Rules, cr.Rules) {
				t.Errorf("%s %s rules differ:\nonly in the chart:     %+v\nonly in deploy/: %+v",
					k.GetKind(), k.GetName(), missingRules(cr.Rules, kr.Rules), missingRules(kr.Rules, cr.Rules))
			}
			// The labels that aggregate a role into Kubernetes' view and
			// edit roles are permissions too.
			if got, want := aggregationLabels(c), aggregationLabels(k); !maps.Equal(got, want) {
				t.Errorf("%s %s aggregation labels: chart %v, deploy/ %v", k.GetKind(), k.GetName(), got, want)
			}
		case "ClusterRoleBinding", "RoleBinding":
			var kb, cb rbacv1.ClusterRoleBinding
			into(t, withKind(k, "ClusterRoleBinding"), &kb)
			into(t, withKind(c, "ClusterRoleBinding"), &cb)
			if kb.RoleRef != cb.RoleRef || !reflect.DeepEqual(kb.Subjects, cb.Subjects) {
				t.Errorf("%s %s: chart binds %+v to %+v, kustomize %+v to %+v", k.GetKind(), k.GetName(), cb.RoleRef, cb.Subjects, kb.RoleRef, kb.Subjects)
			}
		}
	}
	// The Deployment runs as that ServiceAccount in both.
	var kd = readObjects(t, filepath.Join(stack.RepoRoot(), "deploy", "deployment.yaml")).must(t, "Deployment", "serin-controller")
	ksa, _, _ := unstructured.NestedString(kd.Object, "spec", "template", "spec", "serviceAccountName")
	if got := deployment(t, chart).Spec.Template.Spec.ServiceAccountName; got != ksa {
		t.Errorf("chart's Deployment runs as %q, deploy/'s as %q", got, ksa)
	}
}

// aggregationLabels are obj's rbac.authorization.k8s.io/aggregate-to-*
// labels.
func aggregationLabels(obj *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	for k, v := range obj.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			out[k] = v
		}
	}
	return out
}

// missingRules returns the rules of a that b lacks, in a's order (all of
// them when only their order differs).
func missingRules(a, b []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, r := range a {
		if !slices.ContainsFunc(b, func(o rbacv1.PolicyRule) bool { return reflect.DeepEqual(r, o) }) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return a
	}
	return out
}

// rbacIDs names the RBAC objects of objs, sorted.
func rbacIDs(objs objects) []string {
	var ids []string
	for _, o := range objs {
		if slices.Contains(rbacKinds, o.GetKind()) {
			ids = append(ids, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
	}
	slices.Sort(ids)
	return ids
}

// withKind returns a copy of obj as kind, to decode a Role's rules or a
// RoleBinding's references with their cluster-scoped twins' types.
func withKind(obj *unstructured.Unstructured, kind string) *unstructured.Unstructured {
	c := obj.DeepCopy()
	c.SetKind(kind)
	return c
}

// TestCRDIsDeployCRD: the chart's crds/ is a byte-for-byte copy of
// deploy/crd, the one source of truth that `make generate` writes.
func TestCRDIsDeployCRD(t *testing.T) {
	src, _ := filepath.Glob(filepath.Join(stack.RepoRoot(), "deploy", "crd", "*.yaml"))
	inChart, _ := filepath.Glob(filepath.Join(chartDir(), "crds", "*.yaml"))
	if len(src) == 0 || !slices.Equal(baseNames(src), baseNames(inChart)) {
		t.Fatalf("deploy/crd holds %v, the chart's crds/ %v", baseNames(src), baseNames(inChart))
	}
	for _, f := range src {
		sameFile(t, f, filepath.Join(chartDir(), "crds", filepath.Base(f)))
	}
	// helm renders it with --include-crds only.
	crds := render(t, "--include-crds").ofKind("CustomResourceDefinition")
	if len(crds) != 1 || crds[0].GetName() != "rollouts.serin.dev" {
		t.Errorf("--include-crds renders %v, want rollouts.serin.dev", crds.ids())
	}
	if got := render(t).ofKind("CustomResourceDefinition"); len(got) != 0 {
		t.Errorf("the CRD is rendered as a template too: %v", got.ids())
	}
}

// sameFile fails the test unless copy has want's bytes.
func sameFile(t *testing.T, want, copy string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(copy)
	if err != nil {
		t.Fatalf("%v: copy it from %s", err, want)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s: cp %s %s", copy, want, want, copy)
	}
}
