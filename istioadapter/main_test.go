package istioadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/test/stack"
)

// st is the real local stack (etcd, kube-apiserver, Istio CRDs) that the
// integration tests run against. The unit tests share the binary and so
// need it too; a stack that does not start fails the run.
var st *stack.Stack

func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{Istio: true}, &st)) }

var (
	vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	nsSeq atomic.Int64
)

// env is one test's namespace and clients on the stack.
type env struct {
	t      *testing.T
	ctx    context.Context
	ns     string // the test's namespace
	rootNS string // the mesh root namespace the router is given
	istio  versioned.Interface
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	router *Router
}

// newEnv creates a fresh namespace and a mesh root namespace of its own,
// so tests do not see each other's objects, and a Router whose clients go
// through cfg (the admin config when cfg is nil).
func newEnv(t *testing.T, cfg *rest.Config) *env {
	t.Helper()
	if cfg == nil {
		cfg = st.RESTConfig()
	}
	e := &env{t: t, ctx: t.Context()}
	n := nsSeq.Add(1)
	e.ns, e.rootNS = fmt.Sprintf("shop-%d", n), fmt.Sprintf("mesh-root-%d", n)
	kube := kubernetes.NewForConfigOrDie(st.RESTConfig())
	for _, ns := range []string{e.ns, e.rootNS} {
		_, err := kube.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"istio-injection": "enabled"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
		// No controller-manager runs here to create it, and pods need it.
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(e.ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ServiceAccount %s/default: %v", ns, err)
		}
	}
	e.kube = kube
	e.workloads()
	e.istio = versioned.NewForConfigOrDie(cfg)
	e.dyn = dynamic.NewForConfigOrDie(st.RESTConfig())
	r, err := NewRouter(Options{Istio: e.istio, Kube: kube, MeshRootNamespace: e.rootNS})
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	e.router = r
	return e
}

// services are the Services the tests' VirtualServices route to, each
// with a pod per version (pods stay Pending: no kubelet runs here; the
// preflight only reads their labels).
var services = []string{"checkout", "checkout-primary", "checkout-canary", "legacy", "admin"}

// workloads creates, in the test's namespace, a one-port Service for each
// of services, selecting app=<name>, and pods <name>-v1 and <name>-v2 with
// labels app and version, as a real mesh would have behind its routes.
func (e *env) workloads() {
	e.t.Helper()
	for _, name := range services {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
		if _, err := e.kube.CoreV1().Services(e.ns).Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
			e.t.Fatalf("create Service %s/%s: %v", e.ns, name, err)
		}
		for _, v := range []string{"v1", "v2"} {
			e.pod(name+"-"+v, map[string]string{"app": name, "version": v})
		}
	}
}

// pod creates a pod with labels in the test's namespace.
func (e *env) pod(name string, labels map[string]string) {
	e.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "stand-in"}}}}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create pod %s/%s: %v", e.ns, name, err)
	}
}

// apply creates the objects of a YAML document stream in namespace ns
// (the test's namespace when ns is ""), as written, with the dynamic client.
// "$NS" in docs stands for the test's namespace.
func (e *env) apply(ns, docs string) {
	e.t.Helper()
	if ns == "" {
		ns = e.ns
	}
	docs = strings.ReplaceAll(docs, "$NS", e.ns)
	for _, doc := range strings.Split(docs, "\n---\n") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			e.t.Fatalf("parse YAML: %v\n%s", err, doc)
		}
		gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
		if err != nil {
			e.t.Fatalf("apiVersion of %s: %v", obj.GetName(), err)
		}
		plural := strings.ToLower(obj.GetKind()) + "s"
		if p, ok := strings.CutSuffix(plural, "ys"); ok {
			plural = p + "ies" // serviceentries
		}
		gvr := gv.WithResource(plural)
		if _, err := e.dyn.Resource(gvr).Namespace(ns).Create(e.ctx, obj, metav1.CreateOptions{}); err != nil {
			e.t.Fatalf("create %s %s/%s: %v", obj.GetKind(), ns, obj.GetName(), err)
		}
	}
}

// raw reads the VirtualService as the API server stores it.
func (e *env) raw(name string) *unstructured.Unstructured {
	e.t.Helper()
	u, err := e.dyn.Resource(vsGVR).Namespace(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get VirtualService %s/%s: %v", e.ns, name, err)
	}
	return u
}

func (e *env) resourceVersion(name string) string { return e.raw(name).GetResourceVersion() }

// weights returns the stored weights of the route's destinations, -1 for
// an omitted one.
func (e *env) weights(name string, http int) []int64 {
	e.t.Helper()
	routes, _, _ := unstructured.NestedSlice(e.raw(name).Object, "spec", "http")
	var out []int64
	for _, d := range routes[http].(map[string]any)["route"].([]any) {
		w, ok, _ := unstructured.NestedInt64(d.(map[string]any), "weight")
		if !ok {
			w = -1
		}
		out = append(out, w)
	}
	return out
}

// masked is the JSON of the stored object without what a weight write may
// change: the weights of route http's destinations, resourceVersion,
// generation and managedFields.
func (e *env) masked(name string, http int) string {
	e.t.Helper()
	u := e.raw(name)
	obj := u.DeepCopy().Object
	for _, f := range []string{"resourceVersion", "generation", "managedFields"} {
		unstructured.RemoveNestedField(obj, "metadata", f)
	}
	routes, _, _ := unstructured.NestedSlice(obj, "spec", "http")
	for _, d := range routes[http].(map[string]any)["route"].([]any) {
		delete(d.(map[string]any), "weight")
	}
	if err := unstructured.SetNestedSlice(obj, routes, "spec", "http"); err != nil {
		e.t.Fatal(err)
	}
	b, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// tripper counts the requests that pass and lets a test act right before
// and right after the first PATCH, for example to write concurrently.
type tripper struct {
	next        http.RoundTripper
	gets        atomic.Int64 // GETs of single objects and lists, watches excluded
	patches     atomic.Int64
	conflicts   atomic.Int64
	beforePATCH func()
	afterPATCH  func()
}

func (tr *tripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") != "true" {
		tr.gets.Add(1)
	}
	first := req.Method == http.MethodPatch && tr.patches.Add(1) == 1
	if first && tr.beforePATCH != nil {
		tr.beforePATCH()
	}
	resp, err := tr.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusConflict {
		tr.conflicts.Add(1)
	}
	if first && tr.afterPATCH != nil {
		tr.afterPATCH()
	}
	return resp, err
}

// watched returns an admin config whose requests go through tr.
func watched(tr *tripper) *rest.Config {
	cfg := st.RESTConfig()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		tr.next = rt
		return tr
	})
	return cfg
}
