package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// mustStartWorkload creates Deployment ns/dep (containers checkout at
// shop/checkout:2.0 and log-shipper) and starts rollout ns/name delivering
// it, from a manifest on stdin, waiting until the read model has it.
func (e *cliEnv) mustStartWorkload(t testing.TB, ns, name, dep string) {
	t.Helper()
	labels := map[string]string{"app": dep}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dep},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "checkout", Image: "shop/checkout:2.0"},
					{Name: "log-shipper", Image: "fluent/fluent-bit:3.1"},
				}},
			},
		},
	}
	if err := e.kube.Create(t.Context(), d); err != nil {
		t.Fatalf("create Deployment %s/%s: %v", ns, dep, err)
	}
	c := e.operator()
	c.stdin = "apiVersion: serin.dev/v1alpha1\nkind: Rollout\nmetadata: {name: " + name + "}\nspec: {virtualService: " + dep + ", workload: {deployment: " + dep + "}}\n"
	if res := c.run(t, "start", "-f", "-", "-n", ns); res.code != 0 {
		t.Fatalf("start %s/%s: exit %d: %s", ns, name, res.code, res.stderr)
	}
	eventually(t, "the read model to see "+ns+"/"+name, func() bool { _, ok := e.store.Get(ns, name); return ok })
}

// deployment reads Deployment ns/name straight from the API server.
func (e *cliEnv) deployment(t testing.TB, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := e.kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatalf("get Deployment %s/%s: %v", ns, name, err)
	}
	return d
}

// TestRolloutSetImage: set-image releases the named container's new image
// through the API; the API's refusals (an unknown container, with the
// template's containers, a viewer, images already running) are said on
// stderr with exit 1, and nothing is written.
func TestRolloutSetImage(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	e.mustStartWorkload(t, ns, "checkout", "checkout")
	c := e.operator()

	res := c.run(t, "set-image", "-n", ns, "checkout", "checkout=shop/checkout:2.1")
	if res.code != 0 {
		t.Fatalf("set-image: exit %d, stderr %q", res.code, res.stderr)
	}
	if want := "deployment " + ns + "/checkout: set checkout=shop/checkout:2.1; the controller releases the new template"; !strings.Contains(res.stdout, want) {
		t.Errorf("stdout %q, want %q", res.stdout, want)
	}
	cs := e.deployment(t, ns, "checkout").Spec.Template.Spec.Containers
	if cs[0].Image != "shop/checkout:2.1" || cs[1].Image != "fluent/fluent-bit:3.1" {
		t.Errorf("containers %+v, want only checkout's image changed", cs)
	}

	before := e.deployment(t, ns, "checkout").ResourceVersion
	for _, tc := range []struct {
		name  string
		c     cli
		args  []string
		wants []string
	}{
		{"unknown container", c, []string{"web=shop/web:1"}, []string{"no such container", "(HTTP 422)", `  - images.web: deployment ` + ns + `/checkout's pod template has no container "web"; its containers are checkout, log-shipper`}},
		{"invalid image", c, []string{"checkout=Shop/Checkout"}, []string{"(HTTP 422)", "is not an image reference"}},
		{"nothing changes", c, []string{"checkout=shop/checkout:2.1"}, []string{"the template already runs these images", "(HTTP 409)"}},
		{"viewer", cli{server: e.srv.URL, token: viewerToken}, []string{"checkout=shop/checkout:2.2"}, []string{`may not patch deployments.apps "checkout"`, "(HTTP 403)"}},
	} {
		res := tc.c.run(t, append([]string{"set-image", "-n", ns, "checkout"}, tc.args...)...)
		if res.code != exitError {
			t.Errorf("%s: exit %d, want 1; stderr %q", tc.name, res.code, res.stderr)
		}
		for _, w := range tc.wants {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("%s: stderr %q lacks %q", tc.name, res.stderr, w)
			}
		}
		if got := e.deployment(t, ns, "checkout").ResourceVersion; got != before {
			t.Errorf("%s: the Deployment was written (resourceVersion %s -> %s)", tc.name, before, got)
		}
	}
}

// TestRolloutSetImageUsageErrors: a malformed command line is exit 2 and
// sends no request.
func TestRolloutSetImageUsageErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set-image", "-n", "shop"}, "missing the rollout NAME"},
		{[]string{"set-image", "checkout", "checkout=shop/checkout:2.1"}, "missing -n NAMESPACE"},
		{[]string{"set-image", "-n", "shop", "checkout"}, "missing CONTAINER=IMAGE"},
		{[]string{"set-image", "-n", "shop", "checkout", "shop/checkout:2.1"}, `"shop/checkout:2.1": want CONTAINER=IMAGE`},
		{[]string{"set-image", "-n", "shop", "checkout", "=shop/checkout:2.1"}, "want CONTAINER=IMAGE"},
		{[]string{"set-image", "-n", "shop", "checkout", "checkout="}, "want CONTAINER=IMAGE"},
		{[]string{"set-image", "-n", "shop", "checkout", "a=x:1", "a=x:2"}, `container "a" is given twice`},
		{[]string{"history", "-n", "shop"}, "missing the rollout NAME"},
		{[]string{"history", "-n", "shop", "a", "b"}, "want one rollout NAME"},
	} {
		res := cli{server: srv.URL, token: "tok"}.run(t, tc.args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("usage errors sent %d requests; want none", n)
	}
}

// releasedStatus is a rollout's status after two releases: 2.1 rolled
// back on a failing check, 2.2 running.
func releasedStatus(now time.Time) func(*v1alpha1.RolloutStatus) {
	at := func(d time.Duration) metav1.Time { return metav1.Time{Time: now.Add(-d)} }
	ended := at(40 * time.Minute)
	return func(s *v1alpha1.RolloutStatus) {
		s.Phase, s.CurrentStep = v1alpha1.PhaseProgressing, 0
		s.Workload = &v1alpha1.WorkloadStatus{AdoptedAt: &metav1.Time{Time: now.Add(-2 * time.Hour)}, Replicas: 3, StableRevision: "6b7f9c5d4", Release: "7c8d9e0f1"}
		s.Releases = []v1alpha1.Release{
			{Revision: "5a6b7c8d9", Images: map[string]string{"checkout": "shop/checkout:2.1"}, StartedAt: at(45 * time.Minute), FinishedAt: &ended,
				Outcome: "RolledBack", WorstCheck: "error-rate (prometheus) Fail: canary 20% vs stable 0.5%",
				Reason: "rolled back: error-rate failed on the canary's inbound traffic over the last 30 s; traffic returned to stable (100/0) and the canary scaled down"},
			{Revision: "7c8d9e0f1", Images: map[string]string{"checkout": "shop/checkout:2.2"}, StartedAt: at(3 * time.Minute)},
		}
	}
}

// TestRolloutHistory: history prints the API view's releases newest
// first with a header naming the workload's state; on a terminal each
// line fits its width, and in a pipe lines stay whole.
func TestRolloutHistory(t *testing.T) {
	e := getCLIEnv(t)
	ns := e.namespace(t)
	e.mustStartWorkload(t, ns, "checkout", "checkout")
	e.mustStart(t, ns, "subsets", "vs")
	now := time.Now()
	e.setStatus(t, ns, "checkout", releasedStatus(now))

	res := e.operator().run(t, "history", "-n", ns, "checkout")
	if res.code != 0 {
		t.Fatalf("history: exit %d, stderr %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("history printed %q, want the state, a header and two rows", res.stdout)
	}
	if want := "Deployment " + ns + "/checkout: releasing revision 7c8d9e0f1 (3 replicas)"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if !regexp.MustCompile(`^REVISION +IMAGES +STARTED +DURATION +OUTCOME +WORST CHECK +REASON$`).MatchString(lines[1]) {
		t.Errorf("header %q", lines[1])
	}
	if !regexp.MustCompile(`^7c8d9e0f1 +checkout=shop/checkout:2.2 +3m ago +- +Running +- +-$`).MatchString(lines[2]) {
		t.Errorf("newest row %q, want 2.2 running", lines[2])
	}
	if !regexp.MustCompile(`^5a6b7c8d9 +checkout=shop/checkout:2.1 +45m ago +5m00s +RolledBack +error-rate \(prometheus\) Fail: canary 20% vs stable 0.5% +rolled back: .* scaled down$`).MatchString(lines[3]) {
		t.Errorf("older row %q, want 2.1 rolled back with its check and whole reason", lines[3])
	}
	if col := strings.Index(lines[1], "OUTCOME"); strings.Index(lines[2], "Running") != col || strings.Index(lines[3], "RolledBack") != col {
		t.Errorf("the OUTCOME column is not aligned:\n%s", res.stdout)
	}

	// On a terminal every line fits; at 120 columns the worst check and
	// the reason share what the other columns leave, and at 80, where
	// they leave too little, the lines are cut.
	for _, tc := range []struct {
		width int
		shown string
	}{{80, "5a6b7c8d9  checkout=shop/checkout:2.1"}, {120, "error-rate (prometheu…  rolled back: error-rate …"}} {
		var stdout, stderr lockedBuffer
		cio := e.operator().io(&stdout, &stderr)
		cio.TTY, cio.Width = true, func() int { return tc.width }
		if code := rolloutMain(t.Context(), []string{"history", "-n", ns, "checkout"}, cio); code != 0 {
			t.Fatalf("history on a terminal: exit %d, stderr %q", code, stderr.String())
		}
		out := stdout.String()
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if n := utf8.RuneCountInString(l); n >= tc.width {
				t.Errorf("a line of %d characters on a %d-column terminal: %q", n, tc.width, l)
			}
		}
		if !strings.Contains(out, tc.shown) || !strings.Contains(out, "REVISION") {
			t.Errorf("the %d-column history lacks %q:\n%s", tc.width, tc.shown, out)
		}
	}

	res = e.operator().run(t, "status", "-n", ns, "checkout")
	if want := "deployment checkout: releasing revision 7c8d9e0f1; 2 release(s) (serin rollout history -n " + ns + " checkout)"; !strings.Contains(res.stdout, want) ||
		!strings.Contains(res.stdout, "checkout: deployment checkout (stable → canary)") {
		t.Errorf("status lacks the workload line %q or the target:\n%s", want, res.stdout)
	}

	res = e.operator().run(t, "history", "-n", ns, "checkout", "-o", "json")
	var h historyJSON
	if err := json.Unmarshal([]byte(res.stdout), &h); err != nil || len(h.Releases) != 2 || h.Releases[0].Revision != "7c8d9e0f1" || h.Workload == nil {
		t.Errorf("history -o json: %q (%v), want the releases newest first and the workload", res.stdout, err)
	}

	res = e.operator().run(t, "history", "-n", ns, "subsets")
	if res.code != 0 || !strings.Contains(res.stdout, "No releases: rollout "+ns+"/subsets delivers no Deployment") {
		t.Errorf("history of a rollout without a workload: exit %d, stdout %q", res.code, res.stdout)
	}
	res = e.operator().run(t, "history", "-n", ns, "ghost")
	if res.code != exitError || !strings.Contains(res.stderr, "not found (HTTP 404)") {
		t.Errorf("history of a missing rollout: exit %d, stderr %q", res.code, res.stderr)
	}
}
