package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/serin-dev/serin/api"
	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// Who may do what, as newPluginUser waits for it.
var (
	mayView = [2]string{"get", "rollouts"}
	mayEdit = [2]string{"patch", "rollouts"}
	maySet  = [2]string{"patch", "deployments.apps"}
)

func TestIsPlugin(t *testing.T) {
	for argv0, want := range map[string]bool{
		"kubectl-serin": true, "/home/ann/.krew/bin/kubectl-serin": true, `kubectl-serin.exe`: true,
		"serin": false, "/usr/local/bin/serin": false, "kubectl-serin-dev": false,
	} {
		if got := isPlugin(argv0); got != want {
			t.Errorf("isPlugin(%q) = %v, want %v", argv0, got, want)
		}
	}
}

// TestPluginViewer: a user bound to serin-view alone in the namespace
// reads rollouts with kubectl serin (get, status, history, in the
// context's namespace or -n), and each action is refused by the API
// server: exit 1, the refusal in plain words naming the verb and the
// resource and what grants it, and nothing written.
func TestPluginViewer(t *testing.T) {
	e := getCLIEnv(t)
	e.installUserRoles(t)
	ns := e.namespace(t)
	e.mustStartWorkload(t, ns, "checkout", "checkout")
	viewer := e.newPluginUser(t, ns, "viewer", []string{"serin-view"}, mayView)

	res := viewer.run(t, "get")
	if res.code != 0 || !strings.Contains(res.stdout, "NAMESPACE") || !strings.Contains(res.stdout, ns+"   checkout") {
		t.Errorf("get: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = viewer.run(t, "get", "checkout", "-n", ns, "-o", "json")
	var l api.RolloutList
	if err := json.Unmarshal([]byte(res.stdout), &l); res.code != 0 || err != nil || len(l.Items) != 1 || l.Items[0].Name != "checkout" {
		t.Errorf("get checkout -o json: exit %d (%v), stdout %q, stderr %q", res.code, err, res.stdout, res.stderr)
	}
	if res := viewer.run(t, "get", "nothing"); res.code != exitError || !strings.Contains(res.stderr, `rollout "nothing" not found in namespace "`+ns+`"`) {
		t.Errorf("get nothing: exit %d, stderr %q", res.code, res.stderr)
	}
	res = viewer.run(t, "status", "checkout")
	for _, want := range []string{"Rollout:   " + ns + "/checkout", "Phase:     Pending", "Step:      step 0/4",
		"(kubectl serin history -n " + ns + " checkout)"} {
		if res.code != 0 || !strings.Contains(res.stdout, want) {
			t.Errorf("status: exit %d, stdout %q lacks %q; stderr %q", res.code, res.stdout, want, res.stderr)
		}
	}
	res = viewer.run(t, "history", "checkout")
	if res.code != 0 || !strings.Contains(res.stdout, "Deployment "+ns+"/checkout: adopting") {
		t.Errorf("history: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	rv, drv := e.get(t, ns, "checkout").ResourceVersion, e.deployment(t, ns, "checkout").ResourceVersion
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"pause", "checkout"}, []string{`user "` + viewer.name + `" may not pause rollouts in namespace "` + ns + `"`, needsEdit}},
		{[]string{"resume", "checkout"}, []string{"may not resume rollouts", needsEdit}},
		{[]string{"promote", "checkout"}, []string{"may not promote rollouts", needsEdit}},
		{[]string{"abort", "checkout", "--reason", "latency"}, []string{"may not abort rollouts", needsEdit}},
		{[]string{"retry", "checkout"}, []string{"may not retry rollouts", needsEdit}},
		{[]string{"set-image", "checkout", "checkout=shop/checkout:2.1"}, []string{
			`user "` + viewer.name + `" may not patch deployments.apps "checkout" in namespace "` + ns + `"`, needsSet}},
	} {
		res := viewer.run(t, tc.args...)
		if res.code != exitError {
			t.Errorf("%s: exit %d, want 1; stdout %q, stderr %q", tc.args[0], res.code, res.stdout, res.stderr)
		}
		for _, w := range tc.wants {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("%s: stderr %q lacks %q", tc.args[0], res.stderr, w)
			}
		}
		if got := e.get(t, ns, "checkout").ResourceVersion; got != rv {
			t.Errorf("%s: the Rollout was written (resourceVersion %s -> %s)", tc.args[0], rv, got)
		}
		if got := e.deployment(t, ns, "checkout").ResourceVersion; got != drv {
			t.Errorf("%s: the Deployment was written (resourceVersion %s -> %s)", tc.args[0], drv, got)
		}
	}
}

// TestPluginEditor: a user bound to serin-edit, and to Kubernetes' edit
// for set-image, steers a rollout with kubectl serin: pause and resume
// set spec.paused, promote, abort and retry their annotations with the
// user's name from the kubeconfig (a SelfSubjectReview), and set-image
// the Deployment's image with the release annotations.
func TestPluginEditor(t *testing.T) {
	e := getCLIEnv(t)
	e.installUserRoles(t)
	ns := e.namespace(t)
	e.mustStartWorkload(t, ns, "checkout", "checkout")
	editor := e.newPluginUser(t, ns, "editor", []string{"serin-edit", "edit"}, mayView, mayEdit, maySet)

	mustRun := func(args ...string) result {
		t.Helper()
		res := editor.run(t, args...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
		}
		return res
	}
	res := mustRun("pause", "checkout")
	if !e.get(t, ns, "checkout").Spec.Paused || !strings.Contains(res.stdout, "rollout "+ns+"/checkout: ") || !strings.Contains(res.stdout, "paused") {
		t.Errorf("pause: spec.paused %v, stdout %q", e.get(t, ns, "checkout").Spec.Paused, res.stdout)
	}
	mustRun("resume", "checkout", "-n", ns)
	if e.get(t, ns, "checkout").Spec.Paused {
		t.Error("resume: spec.paused is still true")
	}
	mustRun("promote", "checkout")
	mustRun("abort", "checkout", "--reason", "p99 latency doubled")
	a := e.get(t, ns, "checkout").Annotations
	for k, want := range map[string]string{
		v1alpha1.AnnotationPromote: "true", v1alpha1.AnnotationPromoteBy: editor.name,
		v1alpha1.AnnotationAbort: "p99 latency doubled", v1alpha1.AnnotationAbortBy: editor.name,
	} {
		if a[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, a[k], want)
		}
	}
	e.setStatus(t, ns, "checkout", func(s *v1alpha1.RolloutStatus) { s.Phase = v1alpha1.PhaseAborted })
	mustRun("retry", "checkout")
	a = e.get(t, ns, "checkout").Annotations
	if a[v1alpha1.AnnotationRetry] != "true" || a[v1alpha1.AnnotationRetryBy] != editor.name {
		t.Errorf("retry: annotations %v, want %s=true and %s=%s", a, v1alpha1.AnnotationRetry, v1alpha1.AnnotationRetryBy, editor.name)
	}

	res = mustRun("set-image", "checkout", "checkout=shop/checkout:2.1")
	if want := "deployment " + ns + "/checkout: set checkout=shop/checkout:2.1; the controller releases the new template (kubectl serin history -n " + ns + " checkout)"; !strings.Contains(res.stdout, want) {
		t.Errorf("set-image: stdout %q, want %q", res.stdout, want)
	}
	d := e.deployment(t, ns, "checkout")
	if cs := d.Spec.Template.Spec.Containers; cs[0].Image != "shop/checkout:2.1" || cs[1].Image != "fluent/fluent-bit:3.1" {
		t.Errorf("containers %+v, want only checkout's image changed", cs)
	}
	if got := d.Annotations[v1alpha1.AnnotationReleaseBy]; got != editor.name {
		t.Errorf("%s = %q, want %q", v1alpha1.AnnotationReleaseBy, got, editor.name)
	}
	if got, want := d.Annotations[v1alpha1.AnnotationReleaseImages], "checkout=shop/checkout:2.1, log-shipper=fluent/fluent-bit:3.1"; got != want {
		t.Errorf("%s = %q, want %q", v1alpha1.AnnotationReleaseImages, got, want)
	}
	// The API's own refusals come through as they are.
	if res := editor.run(t, "set-image", "checkout", "checkout=shop/checkout:2.1"); res.code != exitError || !strings.Contains(res.stderr, "the template already runs these images") {
		t.Errorf("set-image again: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestPluginKubernetesRoles: the aggregation labels put serin-view in
// Kubernetes' view role and serin-edit in edit, so that those bound to
// them in a namespace need no binding of serin's.
func TestPluginKubernetesRoles(t *testing.T) {
	e := getCLIEnv(t)
	e.installUserRoles(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "checkout", "checkout")
	viewer := e.newPluginUser(t, ns, "k8s-viewer", []string{"view"}, mayView)
	editor := e.newPluginUser(t, ns, "k8s-editor", []string{"edit"}, mayView, mayEdit)

	if res := viewer.run(t, "status", "checkout"); res.code != 0 {
		t.Errorf("view: status: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := viewer.run(t, "pause", "checkout"); res.code != exitError || !strings.Contains(res.stderr, "may not pause rollouts") {
		t.Errorf("view: pause: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := editor.run(t, "pause", "checkout"); res.code != 0 || !e.get(t, ns, "checkout").Spec.Paused {
		t.Errorf("edit: pause: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestPluginListRefused: a user who may not list rollouts is told so by
// the API server's refusal of the list, with what grants it, exit 1.
func TestPluginListRefused(t *testing.T) {
	e := getCLIEnv(t)
	e.installUserRoles(t)
	ns := e.namespace(t)
	nobody := e.newPluginUser(t, ns, "nobody", nil)
	for _, args := range [][]string{{"get"}, {"status", "checkout"}, {"get", "-A"}} {
		res := nobody.run(t, args...)
		if res.code != exitError || !strings.Contains(res.stderr, `cannot list resource "rollouts" in API group "serin.dev"`) || !strings.Contains(res.stderr, needsView) {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}
}

// TestPluginWatch: watch follows the rollout through the in-process
// API's event stream until it succeeds.
func TestPluginWatch(t *testing.T) {
	e := getCLIEnv(t)
	e.installUserRoles(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "checkout", "checkout")
	viewer := e.newPluginUser(t, ns, "viewer", []string{"serin-view"}, mayView)
	done := make(chan result, 1)
	go func() { done <- viewer.run(t, "watch", "checkout") }()
	time.Sleep(300 * time.Millisecond) // let it connect; a watch that starts late sees Succeeded at once, which passes too
	e.setStatus(t, ns, "checkout", func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CanaryWeight, s.CurrentStep = v1alpha1.PhaseSucceeded, 100, 3
		s.History = append(s.History, v1alpha1.Transition{Time: metav1.Now(), From: string(v1alpha1.PhasePending), To: string(v1alpha1.PhaseSucceeded), Reason: "Promoted"})
	})
	select {
	case res := <-done:
		if res.code != 0 || !strings.Contains(res.stdout, "rollout "+ns+"/checkout Succeeded") {
			t.Errorf("watch: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end within 30s of the rollout's success")
	}
}

// TestPluginUsageErrors: a malformed command line is exit 2 and sends
// nothing to the API server of the kubeconfig.
func TestPluginUsageErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: srv.URL}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "shop"}
	cfg.CurrentContext = "c"
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: kubectl serin <command>"},
		{[]string{"list"}, `unknown command "list"`},
		{[]string{"status"}, "missing the rollout NAME"},
		{[]string{"status", "a", "b"}, "want one rollout NAME, got 2 arguments: a b"},
		{[]string{"get", "a", "b"}, "want at most one rollout NAME"},
		{[]string{"get", "-A", "-n", "shop"}, "give either -n NAMESPACE or -A, not both"},
		{[]string{"status", "-A", "checkout"}, "unknown shorthand flag: 'A'"},
		{[]string{"abort", "checkout"}, `missing --reason "TEXT"`},
		{[]string{"abort", "checkout", "--reason", "  "}, `missing --reason "TEXT"`},
		{[]string{"set-image", "checkout"}, "missing CONTAINER=IMAGE"},
		{[]string{"set-image", "checkout", "checkout"}, `"checkout": want CONTAINER=IMAGE`},
		{[]string{"set-image", "checkout", "a=x:1", "a=x:2"}, `container "a" is given twice`},
		{[]string{"status", "checkout", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"pause", "checkout", "--bogus"}, "unknown flag: --bogus"},
	} {
		var args []string
		if tc.args != nil {
			args = append(tc.args, "--kubeconfig", kc)
		}
		res := runPluginWith(t, args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests reached the API server; want none", n)
	}
	if res := runPluginWith(t, "pause", "-h"); res.code != 0 || !strings.Contains(res.stderr, "usage: kubectl serin pause NAME") || !strings.Contains(res.stderr, "--kubeconfig") {
		t.Errorf("pause -h: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestKubectlSerin: the binary linked as kubectl-serin on the PATH is
// `kubectl serin`, run by the real kubectl with the user's kubeconfig
// ($KUBECONFIG): get lists, pause is refused to a viewer with exit 1.
func TestKubectlSerin(t *testing.T) {
	e := getCLIEnv(t)
	e.installUserRoles(t)
	ns := e.namespace(t)
	e.mustStart(t, ns, "checkout", "checkout")
	viewer := e.newPluginUser(t, ns, "viewer", []string{"serin-view"}, mayView)

	dir := t.TempDir()
	bin := filepath.Join(dir, "serin")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink(bin, filepath.Join(dir, pluginName)); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) (string, int) {
		cmd := exec.CommandContext(t.Context(), filepath.Join(stack.BinDir(), "kubectl"), args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+stack.BinDir(), "KUBECONFIG="+viewer.kubeconfig)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("kubectl %v: %v", args, err)
		}
		return string(out), 0
	}
	if out, code := kubectl("serin", "get"); code != 0 || !strings.Contains(out, ns+"   checkout   Pending") {
		t.Errorf("kubectl serin get: exit %d, output %q", code, out)
	}
	if out, code := kubectl("serin", "pause", "checkout", "-n", ns); code != exitError || !strings.Contains(out, "may not pause rollouts") {
		t.Errorf("kubectl serin pause: exit %d, output %q", code, out)
	}
	if out, code := kubectl("serin", "status"); code != exitUsage || !strings.Contains(out, "missing the rollout NAME") {
		t.Errorf("kubectl serin status: exit %d, output %q", code, out)
	}
}
