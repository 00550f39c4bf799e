package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the field manager of every server-side apply by the stack.
const FieldManager = "serin-stack"

// crdWait bounds how long an apply waits for a kind to be served.
const crdWait = 60 * time.Second

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs applies the real Istio CRDs (from the istio.io/api module that
// go.mod resolves) and serin's CRDs from deploy/crd, and waits until they are
// all served.
func (s *Stack) installCRDs(ctx context.Context) error {
	istioDir, err := istioAPIDir(ctx)
	if err != nil {
		return err
	}
	files := []string{filepath.Join(istioDir, "kubernetes", "customresourcedefinitions.gen.yaml")}
	serin, err := filepath.Glob(filepath.Join(RepoRoot(), "deploy", "crd", "*.yaml"))
	if err != nil || len(serin) == 0 {
		return fmt.Errorf("no serin CRDs in %s (%v)", filepath.Join(RepoRoot(), "deploy", "crd"), err)
	}
	files = append(files, serin...)
	begin := time.Now()
	for _, f := range files {
		if err := s.ApplyYAML(ctx, f); err != nil {
			return fmt.Errorf("install CRDs: %w", err)
		}
	}
	s.logf("CRDs installed and served in %v", time.Since(begin).Round(10*time.Millisecond))
	return nil
}

// istioAPIDir returns the module directory of istio.io/api as resolved by
// serin's go.mod, downloading the module when it is not in the cache.
func istioAPIDir(ctx context.Context) (string, error) {
	list := func() (string, error) {
		cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
		cmd.Dir = RepoRoot()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go list -m istio.io/api: %w: %s", err, stderr.String())
		}
		return strings.TrimSpace(string(out)), nil
	}
	dir, err := list()
	if err != nil || dir != "" {
		return dir, err
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "istio.io/api")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go mod download istio.io/api: %w: %s", err, out)
	}
	if dir, err = list(); err == nil && dir == "" {
		err = errors.New("go list -m istio.io/api: module directory still unknown after download")
	}
	return dir, err
}

// ApplyYAML server-side applies every object of a multi-document YAML (or
// JSON) file, in order, with field manager "serin-stack" and forced
// conflicts. Namespaced objects without a namespace go to "default". An
// object whose kind is not served yet (a CRD earlier in the same file) is
// retried until it is. When the file holds CRDs, ApplyYAML returns only once
// they are Established and their resources show in discovery.
func (s *Stack) ApplyYAML(ctx context.Context, path string) error {
	objs, err := readObjects(path)
	if err != nil {
		return err
	}
	cfg := s.RESTConfig()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apply %s: dynamic client: %w", path, err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apply %s: discovery client: %w", path, err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	var crds []string
	for _, obj := range objs {
		if err := applyObject(ctx, dyn, mapper, obj); err != nil {
			return fmt.Errorf("apply %s: %w", path, err)
		}
		if obj.GroupVersionKind().GroupKind() == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) {
			crds = append(crds, obj.GetName())
		}
	}
	if err := waitCRDsServed(ctx, dyn, disc, crds); err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	return nil
}

// readObjects decodes every non-empty document of a YAML or JSON file,
// flattening "List" kinds into their items.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", path, err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 64*1024)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("apply %s: document %d: %w", path, i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("apply %s: document %d has no kind or apiVersion", path, i)
		}
		if !u.IsList() {
			objs = append(objs, u)
			continue
		}
		err := u.EachListItem(func(o k8sruntime.Object) error {
			objs = append(objs, o.(*unstructured.Unstructured))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("apply %s: document %d: %w", path, i, err)
		}
	}
}

// applyObject server-side applies one object, waiting for its kind to be
// served when the REST mapper does not know it yet.
func applyObject(ctx context.Context, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	id := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
	var mapping *meta.RESTMapping
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, crdWait, true, func(context.Context) (bool, error) {
		var err error
		mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			mapper.Reset()
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("%s: kind %s not served: %w", id, gvk, err)
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	res := dyn.Resource(mapping.Resource)
	var client dynamic.ResourceInterface = res
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		id = fmt.Sprintf("%s %s/%s", gvk.Kind, ns, obj.GetName())
		client = res.Namespace(ns)
	}
	force := true
	_, err = client.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("server-side apply %s: %w", id, err)
	}
	return nil
}

// waitCRDsServed waits until every named CRD is Established and each of its
// served versions lists the resource in discovery.
func waitCRDsServed(ctx context.Context, dyn dynamic.Interface, disc discovery.DiscoveryInterface, names []string) error {
	for _, name := range names {
		var pending string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, crdWait, true, func(ctx context.Context) (bool, error) {
			crd, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			pending = crdPending(ctx, crd, disc)
			return pending == "", nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not served (%s): %w", name, pending, err)
		}
	}
	return nil
}

// crdPending says what the CRD still lacks ("" when it is Established and
// every served version is in discovery).
func crdPending(ctx context.Context, crd *unstructured.Unstructured, disc discovery.DiscoveryInterface) string {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	established := slices.ContainsFunc(conds, func(c any) bool {
		m, _ := c.(map[string]any)
		return m["type"] == "Established" && m["status"] == "True"
	})
	if !established {
		return "not Established"
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); !served {
			continue
		}
		gv := group + "/" + fmt.Sprint(m["name"])
		list, err := disc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			return fmt.Sprintf("%s: %v", gv, err)
		}
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }) {
			return fmt.Sprintf("%s/%s not in discovery", gv, plural)
		}
	}
	return ""
}
