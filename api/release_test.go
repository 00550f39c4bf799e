package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api"
)

// workloadBody is a valid create request for a rollout of ns delivering
// Deployment dep on VirtualService vs.
func workloadBody(ns, name, vs, dep string) string {
	return fmt.Sprintf(`{"namespace":%q,"name":%q,"spec":{"virtualService":%q,"workload":{"deployment":%q}}}`, ns, name, vs, dep)
}

// mustCreateWorkload creates a rollout delivering Deployment dep through
// the API and waits until the read model has it.
func (e *env) mustCreateWorkload(t testing.TB, ns, name, vs, dep string) {
	t.Helper()
	r := e.call(t, http.MethodPost, "/api/v1/rollouts", operatorToken, strings.NewReader(workloadBody(ns, name, vs, dep)))
	if r.status != http.StatusCreated {
		t.Fatalf("create %s/%s: status %d: %s", ns, name, r.status, r.body)
	}
	eventually(t, "the read model to see "+ns+"/"+name, func() bool { _, ok := e.store.Get(ns, name); return ok })
}

// mustDeploy creates Deployment ns/name running checkout (shop/checkout:2.0)
// and log-shipper, after an init container migrate.
func (e *env) mustDeploy(t testing.TB, ns, name string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"team": "payments"}},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "migrate", Image: "shop/migrate:2.0"}},
					Containers: []corev1.Container{
						{Name: "checkout", Image: "shop/checkout:2.0", Env: []corev1.EnvVar{{Name: "MODE", Value: "live"}}},
						{Name: "log-shipper", Image: "fluent/fluent-bit:3.1"},
					},
				},
			},
		},
	}
	if err := e.kube.Create(t.Context(), d); err != nil {
		t.Fatalf("create Deployment %s/%s: %v", ns, name, err)
	}
	return e.deployment(t, ns, name)
}

// deployment reads Deployment ns/name from the API server.
func (e *env) deployment(t testing.TB, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatalf("get Deployment %s/%s: %v", ns, name, err)
	}
	return d
}

// TestRelease: an operator's release sets the named container's image of
// the delivered Deployment and nothing else of it, under the field
// manager serin-api; the answer is 202 with the rollout, and the audit log
// names the user, the Deployment and the images.
func TestRelease(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	before := e.mustDeploy(t, ns, "checkout")
	e.mustCreateWorkload(t, ns, "checkout", "checkout", "checkout")
	roBefore := e.get(t, ns, "checkout").ResourceVersion

	r := e.call(t, http.MethodPost, "/api/v1/rollouts/"+ns+"/checkout/release", operatorToken,
		strings.NewReader(`{"images":{"checkout":"shop/checkout:2.1"}}`))
	if r.status != http.StatusAccepted {
		t.Fatalf("release: status %d, want 202: %s", r.status, r.body)
	}
	var got api.Rollout
	if err := json.Unmarshal(r.body, &got); err != nil || got.Name != "checkout" || got.Workload == nil || got.Workload.Deployment != "checkout" {
		t.Errorf("answer %s (%v), want the rollout with its workload", r.body, err)
	}

	after := e.deployment(t, ns, "checkout")
	want := before.Spec.Template.DeepCopy()
	want.Spec.Containers[0].Image = "shop/checkout:2.1"
	if !equality.Semantic.DeepEqual(after.Spec.Template, *want) {
		t.Errorf("the pod template became\n%+v\nwant only checkout's image changed:\n%+v", after.Spec.Template, *want)
	}
	if after.Spec.Replicas == nil || *after.Spec.Replicas != *before.Spec.Replicas || !equality.Semantic.DeepEqual(after.Spec.Selector, before.Spec.Selector) {
		t.Errorf("the Deployment's spec changed beyond the image: %+v", after.Spec)
	}
	// Who set which images is recorded on the Deployment's metadata, for
	// the release to name its author.
	if by, imgs := after.Annotations["serin.dev/release-by"], after.Annotations["serin.dev/release-images"]; by == "" || !strings.Contains(imgs, "checkout=shop/checkout:2.1") {
		t.Errorf("release annotations by=%q images=%q, want the operator and the resulting images", by, imgs)
	}
	managers := map[string]bool{}
	for _, m := range after.ManagedFields {
		managers[m.Manager] = true
	}
	if !managers[api.FieldManager] {
		t.Errorf("managed fields %v, want an entry of %s", managers, api.FieldManager)
	}
	if got := e.get(t, ns, "checkout").ResourceVersion; got != roBefore {
		t.Errorf("the release wrote the Rollout (resourceVersion %s -> %s); only the Deployment changes", roBefore, got)
	}

	// Two containers at once; the one whose image stays is not written.
	r = e.call(t, http.MethodPost, "/api/v1/rollouts/"+ns+"/checkout/release", operatorToken,
		strings.NewReader(`{"images":{"checkout":"shop/checkout:2.1","log-shipper":"registry.example.com:5000/fluent/fluent-bit:3.2@sha256:`+strings.Repeat("ab", 32)+`"}}`))
	if r.status != http.StatusAccepted {
		t.Fatalf("second release: status %d: %s", r.status, r.body)
	}
	if cs := e.deployment(t, ns, "checkout").Spec.Template.Spec.Containers; cs[0].Image != "shop/checkout:2.1" ||
		!strings.HasPrefix(cs[1].Image, "registry.example.com:5000/fluent/fluent-bit:3.2@sha256:") || len(cs) != 2 {
		t.Errorf("containers %+v after the second release", cs)
	}

	logs := e.logs.String()
	for _, want := range []string{`"user":"olga"`, `"resource":"deployments.apps"`, `"name":"checkout"`, `"namespace":"` + ns + `"`,
		`"images":"checkout=shop/checkout:2.1"`, `"status":202`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
}

// TestReleaseErrors: every refusal says why, and neither the Deployment
// nor any Rollout is written.
func TestReleaseErrors(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustDeploy(t, ns, "checkout")
	e.mustCreateWorkload(t, ns, "ro", "checkout", "checkout")
	e.mustCreateWorkload(t, ns, "orphan", "other", "ghost")
	e.mustCreate(t, ns, "subsets", "vs-subsets")
	depBefore := e.deployment(t, ns, "checkout").ResourceVersion
	before := map[string]string{}
	for _, r := range e.stored(t, ns) {
		before[r.Name] = r.ResourceVersion
	}
	release := func(name string) string { return "/api/v1/rollouts/" + ns + "/" + name + "/release" }
	ok := `{"images":{"checkout":"shop/checkout:2.1"}}`
	for _, tc := range []struct {
		name, path, token, body string
		status                  int
		detail                  string
	}{
		{"no workload", release("subsets"), operatorToken, ok, http.StatusConflict, "delivers no Deployment (spec.workload is not set)"},
		{"missing rollout", release("ghost"), operatorToken, ok, http.StatusNotFound, "rollout " + ns + "/ghost not found"},
		{"missing deployment", release("orphan"), operatorToken, ok, http.StatusNotFound, "deployment " + ns + "/ghost, which the rollout delivers, does not exist"},
		{"viewer", release("ro"), viewerToken, ok, http.StatusForbidden, `user "victor" may not patch deployments.apps "checkout" in namespace "` + ns + `"`},
		{"malformed", release("ro"), operatorToken, `{"images":`, http.StatusBadRequest, "malformed"},
		{"unknown field", release("ro"), operatorToken, `{"images":{"checkout":"shop/checkout:2.1"},"force":true}`, http.StatusBadRequest, "force"},
		{"no body", release("ro"), operatorToken, ``, http.StatusBadRequest, "malformed"},
		{"no images", release("ro"), operatorToken, `{"images":{}}`, http.StatusUnprocessableEntity, "images: required"},
		{"empty container name", release("ro"), operatorToken, `{"images":{"":"shop/checkout:2.1"}}`, http.StatusUnprocessableEntity, "images: an empty container name"},
		{"not a container name", release("ro"), operatorToken, `{"images":{"Check Out":"shop/checkout:2.1"}}`, http.StatusUnprocessableEntity, "images.Check Out: not a container name"},
		{"unknown container", release("ro"), operatorToken, `{"images":{"web":"shop/web:2.1"}}`, http.StatusUnprocessableEntity,
			`images.web: deployment ` + ns + `/checkout's pod template has no container "web"; its containers are checkout, log-shipper`},
		{"init container", release("ro"), operatorToken, `{"images":{"migrate":"shop/migrate:2.1"}}`, http.StatusUnprocessableEntity, `"migrate" is an init container`},
		{"one unknown among known", release("ro"), operatorToken, `{"images":{"checkout":"shop/checkout:2.1","web":"shop/web:2.1"}}`, http.StatusUnprocessableEntity, `no container "web"`},
		{"uppercase image", release("ro"), operatorToken, `{"images":{"checkout":"Shop/Checkout:2.1"}}`, http.StatusUnprocessableEntity, `images.checkout: "Shop/Checkout:2.1" is not an image reference`},
		{"image with a space", release("ro"), operatorToken, `{"images":{"checkout":"shop/checkout:2.1 "}}`, http.StatusUnprocessableEntity, "is not an image reference"},
		{"bad tag", release("ro"), operatorToken, `{"images":{"checkout":"shop/checkout:"}}`, http.StatusUnprocessableEntity, "is not an image reference"},
		{"bad digest", release("ro"), operatorToken, `{"images":{"checkout":"shop/checkout@sha256:abc"}}`, http.StatusUnprocessableEntity, "is not an image reference"},
		{"empty image", release("ro"), operatorToken, `{"images":{"checkout":""}}`, http.StatusUnprocessableEntity, "images.checkout: an empty image"},
		{"image too long", release("ro"), operatorToken, `{"images":{"checkout":"shop/` + strings.Repeat("a", 2000) + `"}}`, http.StatusUnprocessableEntity, "at most 1024 bytes"},
		{"changes nothing", release("ro"), operatorToken, `{"images":{"checkout":"shop/checkout:2.0","log-shipper":"fluent/fluent-bit:3.1"}}`, http.StatusConflict,
			"the template already runs these images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, http.MethodPost, tc.path, tc.token, strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if eb := r.errorBody(t); !strings.Contains(eb.Error+" "+strings.Join(eb.Details, " "), tc.detail) {
				t.Errorf("error %+v does not say %q", eb, tc.detail)
			}
			if got := e.deployment(t, ns, "checkout").ResourceVersion; got != depBefore {
				t.Errorf("the Deployment was written (resourceVersion %s -> %s)", depBefore, got)
			}
			assertUnchanged(t, e, ns, before)
		})
	}
}

// grantDeploymentPatch gives user patch on Deployment name in ns alone,
// through a Role and a RoleBinding.
func (e *env) grantDeploymentPatch(t *testing.T, ns, name, user string) {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "patch-" + name + "-" + user},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{name}, Verbs: []string{"patch"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}}
	for _, obj := range []client.Object{role, binding} {
		if err := e.kube.Create(t.Context(), obj); err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
}

// TestReleaseKubeAuth: with --auth=kubernetes a release needs what
// kubectl set image needs, patch on that Deployment, besides get on the
// rollout it answers with; patch on the rollout alone is not enough.
func TestReleaseKubeAuth(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustDeploy(t, ns, "checkout")
	e.mustDeploy(t, ns, "other")
	e.mustCreateWorkload(t, ns, "ro", "checkout", "checkout")
	e.grant(t, ns, "alice")                          // rollouts: get, list, patch
	e.grantDeploymentPatch(t, ns, "other", "alice")  // another Deployment
	e.grantDeploymentPatch(t, ns, "checkout", "bob") // no rollouts
	k := e.kubeAuthServer(t, 0)
	alice, bob := st.Token("alice"), st.Token("bob")
	path, body := "/api/v1/rollouts/"+ns+"/ro/release", `{"images":{"checkout":"shop/checkout:2.1"}}`
	eventually(t, "alice's Role to take effect", func() bool {
		return k.call(t, http.MethodGet, "/api/v1/rollouts/"+ns+"/ro", alice, nil).status == http.StatusOK
	})
	depBefore := e.deployment(t, ns, "checkout").ResourceVersion
	for _, tc := range []struct {
		name, token, detail string
	}{
		{"alice may patch the rollout and another Deployment, not this one", alice, `may not patch deployments.apps "checkout"`},
		{"bob may patch the Deployment but not read the rollout", bob, "may not get rollouts"},
	} {
		r := k.call(t, http.MethodPost, path, tc.token, strings.NewReader(body))
		if r.status != http.StatusForbidden || !strings.Contains(r.errorBody(t).Error, tc.detail) {
			t.Errorf("%s: status %d, %s; want 403 saying %q", tc.name, r.status, r.body, tc.detail)
		}
	}
	if got := e.deployment(t, ns, "checkout").ResourceVersion; got != depBefore {
		t.Errorf("a refused release wrote the Deployment (resourceVersion %s -> %s)", depBefore, got)
	}

	e.grantDeploymentPatch(t, ns, "checkout", "alice")
	var r response
	eventually(t, "alice's patch on the Deployment to take effect", func() bool {
		r = k.call(t, http.MethodPost, path, alice, strings.NewReader(body))
		return r.status != http.StatusForbidden
	})
	if r.status != http.StatusAccepted {
		t.Fatalf("alice's release: status %d: %s", r.status, r.body)
	}
	if img := e.deployment(t, ns, "checkout").Spec.Template.Spec.Containers[0].Image; img != "shop/checkout:2.1" {
		t.Errorf("checkout runs %q after alice's release, want shop/checkout:2.1", img)
	}
}

// renamingReader is a Reader whose first Get of a Deployment is followed,
// before the caller can patch, by a rename of its first container: a
// concurrent change between the read and the write.
type renamingReader struct {
	client.Client
	t       *testing.T
	renamed bool
}

func (r *renamingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := r.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if d, ok := obj.(*appsv1.Deployment); ok && !r.renamed {
		r.renamed = true
		cur := d.DeepCopy()
		cur.Spec.Template.Spec.Containers[0].Name = "checkout-v2"
		if err := r.Client.Update(ctx, cur); err != nil {
			r.t.Fatalf("rename the container: %v", err)
		}
	}
	return nil
}

// TestSetImagesJudgesTheTemplateItPatches: when the Deployment changes
// between the read and the patch, the patch fails on its resourceVersion
// and the request is judged again on the new template. Without the
// precondition the renamed container would come back as a second
// container holding only a name and an image.
func TestSetImagesJudgesTheTemplateItPatches(t *testing.T) {
	e := getEnv(t)
	ns := e.namespace(t)
	e.mustDeploy(t, ns, "checkout")
	w := api.KubeWriter{Client: e.kube, Reader: &renamingReader{Client: e.kube, t: t}}
	plans := 0
	_, err := w.SetImages(t.Context(), ns, "checkout", "olga", func(tmpl corev1.PodTemplateSpec) (map[string]string, error) {
		plans++
		if tmpl.Spec.Containers[0].Name != "checkout" {
			return nil, errors.New("no container checkout")
		}
		return map[string]string{"checkout": "shop/checkout:2.1"}, nil
	})
	if err == nil || plans != 2 {
		t.Fatalf("SetImages after a concurrent rename: err %v after %d plans; want the second plan's refusal", err, plans)
	}
	cs := e.deployment(t, ns, "checkout").Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[0].Name != "checkout-v2" || cs[0].Image != "shop/checkout:2.0" {
		t.Errorf("containers %+v; want the renamed one untouched and no container added", cs)
	}
}
