// Package helm_test tests the Helm chart in deploy/helm/serin with the real
// helm binary (built by test/tools/install.sh into the tool cache), the
// real kubectl, and the local stack's real kube-apiserver: lint, renders,
// the values schema's refusals, its agreement with the kustomize manifests
// in deploy/, a server-side dry run, and an install, upgrade and uninstall.
package helm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/test/stack"
)

var (
	st *stack.Stack
	// helmHome holds helm's config, cache and data, so that the tests read
	// and write nothing of the user's helm set-up.
	helmHome string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if err := ensureHelm(os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "helm tests: %v\n", err)
		return 1 // a missing tool is a failure, never a skip
	}
	dir, err := os.MkdirTemp("", "serin-helm-home-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "helm tests: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	helmHome = dir
	return stack.Main(m, stack.Options{}, &st)
}

// helmBin is the helm that install.sh builds.
func helmBin() string { return filepath.Join(stack.BinDir(), "helm") }

// kubectlBin is the kubectl that install.sh builds with kube-apiserver.
func kubectlBin() string { return filepath.Join(stack.BinDir(), "kubectl") }

// ensureHelm runs install.sh helm when the cached helm is missing, as
// stack.Ensure does for the stack's own components (it does not know helm).
func ensureHelm(log io.Writer) error {
	if fi, err := os.Stat(helmBin()); err == nil && fi.Mode()&0o111 != 0 {
		return nil
	}
	script := filepath.Join(stack.RepoRoot(), "test", "tools", "install.sh")
	fmt.Fprintf(log, "[helm] %s missing: running %s helm\n", helmBin(), script)
	cmd := exec.Command("bash", script, "helm")
	cmd.Dir = stack.RepoRoot()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install.sh helm: %w", err)
	}
	if _, err := os.Stat(helmBin()); err != nil {
		return fmt.Errorf("install.sh helm succeeded but %s is missing: %w", helmBin(), err)
	}
	return nil
}

// chartDir is deploy/helm/serin.
func chartDir() string { return filepath.Join(stack.RepoRoot(), "deploy", "helm", "serin") }

// testdata is deploy/helm/testdata/<name>.
func testdata(name string) string {
	return filepath.Join(stack.RepoRoot(), "deploy", "helm", "testdata", name)
}

// runHelm runs helm with its homes in helmHome and the stack's kubeconfig,
// and returns its stdout and stderr apart.
func runHelm(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(helmBin(), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
		"KUBECONFIG="+st.Kubeconfig,
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// kubectl runs kubectl on the stack with stdin, and returns its combined
// output.
func kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command(kubectlBin(), append([]string{"--kubeconfig", st.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// release is the release name and namespace of the renders: those of
// deploy/ (serin in serin-system), so that the chart's objects have the
// kustomize manifests' names.
const (
	releaseName = "serin"
	releaseNS   = "serin-system"
)

// renderYAML runs helm template of the chart as release serin in
// serin-system with the given extra arguments (-f, --set...), failing the
// test when helm fails.
func renderYAML(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := runHelm(append([]string{"template", releaseName, chartDir(), "--namespace", releaseNS}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr)
	}
	return out
}

// render is renderYAML decoded into objects.
func render(t *testing.T, args ...string) objects {
	t.Helper()
	objs, err := decode(renderYAML(t, args...))
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return objs
}

// objects are decoded manifests, in order.
type objects []*unstructured.Unstructured

// decode reads every non-empty document of a multi-document YAML stream.
func decode(s string) (objects, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var objs objects
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("decode manifests: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// readObjects decodes a manifest file.
func readObjects(t *testing.T, path string) objects {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// get returns the object of that kind and name, or nil.
func (o objects) get(kind, name string) *unstructured.Unstructured {
	for _, obj := range o {
		if obj.GetKind() == kind && obj.GetName() == name {
			return obj
		}
	}
	return nil
}

// must is get, failing the test when there is none.
func (o objects) must(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	obj := o.get(kind, name)
	if obj == nil {
		t.Fatalf("no %s %s among %v", kind, name, o.ids())
	}
	return obj
}

// ids names every object as Kind/name.
func (o objects) ids() []string {
	ids := make([]string, len(o))
	for i, obj := range o {
		ids[i] = obj.GetKind() + "/" + obj.GetName()
	}
	return ids
}

// ofKind returns the objects of one kind.
func (o objects) ofKind(kind string) objects {
	var out objects
	for _, obj := range o {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

// into converts an object into its typed form, refusing fields the type
// does not have (a typo in a template would otherwise vanish).
func into(t *testing.T, obj *unstructured.Unstructured, typed any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, typed, true); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// deployment returns the controller's Deployment of a render.
func deployment(t *testing.T, objs objects) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	into(t, objs.must(t, "Deployment", "serin-controller"), &d)
	return &d
}

// chartAppVersion reads appVersion from Chart.yaml.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir(), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: appVersion %q: %v", c.AppVersion, err)
	}
	return c.AppVersion
}
