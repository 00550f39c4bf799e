package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// behaviourAnnotation is the simulator's per-template behaviour: how a
// "bad release" is made on the local stack (test/meshsim).
const behaviourAnnotation = "meshsim.serin.dev/behaviour"

// workloadDeployment is the team's own Deployment of checkout, before
// serin delivers it: two replicas of image shop/checkout:1.
func (e *meshEnv) workloadDeployment() *appsv1.Deployment {
	e.t.Helper()
	labels := map[string]string{"app": "checkout", "version": "v1"}
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "checkout", Labels: map[string]string{"app": "checkout"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					"meshsim.serin.dev/start-delay": "1s",
					"sidecar.istio.io/proxyCPU":     "100m", "sidecar.istio.io/proxyMemory": "128Mi",
					"sidecar.istio.io/proxyCPULimit": "500m", "sidecar.istio.io/proxyMemoryLimit": "256Mi",
				}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "checkout", Image: "shop/checkout:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: stack.TargetPort}}}}},
			},
		},
	}
	must(e.t, e.c.Create(e.ctx, d))
	return d
}

// kubectl runs kubectl against the stack in the test's namespace.
func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	kubectl := filepath.Join(stack.BinDir(), "kubectl")
	out, err := exec.CommandContext(e.ctx, kubectl, append([]string{"--kubeconfig", st.Kubeconfig, "-n", e.ns}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) deployment(name string) *appsv1.Deployment {
	e.t.Helper()
	d := &appsv1.Deployment{}
	must(e.t, e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: name}, d))
	return d
}

// waitRelease waits until the n-th release (1-based) has ended and its end
// has been carried out on the workload, and returns the rollout.
func (e *env) waitRelease(name string, n int, timeout time.Duration) *v1alpha1.Rollout {
	e.t.Helper()
	var ro *v1alpha1.Rollout
	e.eventually(timeout, fmt.Sprintf("release %d of %s to end", n, name), func() (bool, string) {
		ro = e.get(name)
		st := ro.Status
		done := st.Workload != nil && st.Workload.Done && len(st.Releases) >= n && st.Releases[n-1].Outcome != ""
		return done, fmt.Sprintf("%s %d%%, %d releases: %s", st.Phase, st.CanaryWeight, len(st.Releases), st.Message)
	})
	return ro
}

// assertServingStable checks the mesh is ready for the next release: the
// route at 100/0 on the stable subset, the stable copy running image, the
// canary copy and the team's Deployment scaled to zero.
func (e *meshEnv) assertServingStable(image string) {
	e.t.Helper()
	vs := e.vs()
	var route []string
	for _, r := range vs.Spec.Http {
		for _, d := range r.Route {
			route = append(route, fmt.Sprintf("%s=%d", d.Destination.Subset, d.Weight))
		}
	}
	if !slices.Equal(route, []string{"stable=100", "canary=0"}) {
		e.t.Errorf("route %v, want stable=100 canary=0", route)
	}
	stable := e.deployment("checkout-stable")
	if got := stable.Spec.Template.Spec.Containers[0].Image; got != image {
		e.t.Errorf("checkout-stable runs %s, want %s", got, image)
	}
	if got := stable.Spec.Template.Labels[v1alpha1.LabelTrack]; got != "stable" {
		e.t.Errorf("checkout-stable's pods are labelled track %q", got)
	}
	for _, name := range []string{"checkout-canary", "checkout"} {
		d := &appsv1.Deployment{}
		err := e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: name}, d)
		if name == "checkout-canary" && apierrors.IsNotFound(err) {
			continue // before the first release
		}
		must(e.t, err)
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
			e.t.Errorf("%s has %v replicas, want 0", name, d.Spec.Replicas)
		}
	}
}

// TestWorkloadReleasesByKubectlSetImage: serin adopts a team's Deployment
// without dropping a request, then delivers three releases made only by
// changing the Deployment (kubectl set image, and kubectl patch for the
// simulator's "bad" behaviour): good, bad, good. Each ends with the route
// at 100/0 on stable and nothing to do by hand; the bad one is rolled back
// and leaves stable untouched.
func TestWorkloadReleasesByKubectlSetImage(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.workloadDeployment()
	// Until the team's pods are ready, the simulator's traffic finds none:
	// that is before serin, and not counted against it.
	e.eventually(30*time.Second, "the team's Deployment ready", func() (bool, string) {
		d := e.deployment("checkout")
		return d.Status.ReadyReplicas == 2, fmt.Sprintf("%d ready", d.Status.ReadyReplicas)
	})
	time.Sleep(time.Second) // requests in flight end
	before := e.sim.UnreadyRequests().Total
	unready := func() int64 { return e.sim.UnreadyRequests().Total - before }
	checkUnready := func(stage string) {
		if n := unready(); n != 0 {
			t.Errorf("%s: %d requests went to pods that were not ready: %+v", stage, n, e.sim.UnreadyRequests())
			before += n
		}
	}
	e.startController()
	e.rollout("checkout", func(r *v1alpha1.Rollout) {
		r.Spec.StableSubset, r.Spec.CanarySubset = "", ""
		r.Spec.Workload = &v1alpha1.WorkloadRef{Deployment: "checkout"}
		r.Spec.ProgressDeadline = dur(time.Minute)
		analysed(3*time.Second, nil)(r)
	})
	e.eventually(60*time.Second, "adoption", func() (bool, string) {
		ro := e.get("checkout")
		d := e.deployment("checkout")
		w := ro.Status.Workload
		return w != nil && w.AdoptedAt != nil && *d.Spec.Replicas == 0, ro.Status.Message
	})
	e.assertServingStable("shop/checkout:1")
	checkUnready("adoption")

	e.kubectl("set", "image", "deployment/checkout", "checkout=shop/checkout:2")
	ro := e.waitRelease("checkout", 1, 90*time.Second)
	if r := ro.Status.Releases[0]; r.Outcome != "Succeeded" || r.Images["checkout"] != "shop/checkout:2" {
		t.Fatalf("release 1: %+v, want Succeeded with shop/checkout:2", r)
	}
	e.assertServingStable("shop/checkout:2")
	checkUnready("release 1")

	e.kubectl("patch", "deployment/checkout", "-p", fmt.Sprintf(
		`{"spec":{"template":{"metadata":{"annotations":{%q:"{\"errorRate\":0.5}"}},"spec":{"containers":[{"name":"checkout","image":"shop/checkout:3"}]}}}}`,
		behaviourAnnotation))
	ro = e.waitRelease("checkout", 2, 90*time.Second)
	if r := ro.Status.Releases[1]; r.Outcome != "RolledBack" || r.WorstCheck == "" {
		t.Fatalf("release 2: %+v, want RolledBack naming its worst check", r)
	}
	e.assertServingStable("shop/checkout:2")
	checkUnready("release 2")

	e.kubectl("patch", "deployment/checkout", "-p", fmt.Sprintf(
		`{"spec":{"template":{"metadata":{"annotations":{%q:null}},"spec":{"containers":[{"name":"checkout","image":"shop/checkout:4"}]}}}}`,
		behaviourAnnotation))
	ro = e.waitRelease("checkout", 3, 90*time.Second)
	var outcomes []string
	for _, r := range ro.Status.Releases {
		outcomes = append(outcomes, r.Outcome)
	}
	if !slices.Equal(outcomes, []string{"Succeeded", "RolledBack", "Succeeded"}) {
		t.Fatalf("outcomes %v, want Succeeded, RolledBack, Succeeded", outcomes)
	}
	e.assertServingStable("shop/checkout:4")
	checkUnready("release 3")

	// Deleting the Rollout leaves a working service: stable serves 100%.
	must(t, e.c.Delete(e.ctx, ro))
	e.eventually(30*time.Second, "the Rollout gone", func() (bool, string) {
		var list v1alpha1.RolloutList
		must(t, e.c.List(e.ctx, &list))
		for _, r := range list.Items {
			if r.Namespace == e.ns {
				return false, r.Name
			}
		}
		return true, ""
	})
	e.assertServingStable("shop/checkout:4")
	counts, err := e.sim.Fire(e.ctx, 50)
	must(t, err)
	if counts["v1"] != 50 || unready() != 0 {
		t.Errorf("after deleting the Rollout, 50 requests reached %v (want all 50 at checkout), %d unready",
			counts, unready())
	}
}

// deliver starts the controller and a Rollout delivering checkout, waits
// for the adoption, and returns the controller.
func (e *meshEnv) deliver(step time.Duration, mutate func(*v1alpha1.Rollout)) *controllerProc {
	e.t.Helper()
	p := e.startController()
	e.rollout("checkout", func(r *v1alpha1.Rollout) {
		r.Spec.StableSubset, r.Spec.CanarySubset = "", ""
		r.Spec.Workload = &v1alpha1.WorkloadRef{Deployment: "checkout"}
		r.Spec.ProgressDeadline = dur(time.Minute)
		analysed(step, nil)(r)
		if mutate != nil {
			mutate(r)
		}
	})
	e.eventually(60*time.Second, "adoption", func() (bool, string) {
		ro := e.get("checkout")
		w := ro.Status.Workload
		return w != nil && w.AdoptedAt != nil && *e.deployment("checkout").Spec.Replicas == 0, ro.Status.Message
	})
	return p
}

// TestWorkloadTemplateChangeSupersedesTheRelease: a new template while a
// release is at 25% or more returns traffic to stable at once, and the
// newest template's release starts; it is never merged into the first.
func TestWorkloadTemplateChangeSupersedesTheRelease(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.workloadDeployment()
	e.deliver(5*time.Second, nil)
	e.kubectl("set", "image", "deployment/checkout", "checkout=shop/checkout:2")
	e.eventually(60*time.Second, "release 1 at 25%", func() (bool, string) {
		ro := e.get("checkout")
		return ro.Status.Phase == v1alpha1.PhaseProgressing && ro.Status.CanaryWeight >= 25, ro.Status.Message
	})
	log := e.watchWeights("primary")
	e.kubectl("set", "image", "deployment/checkout", "checkout=shop/checkout:3")
	ro := e.waitRelease("checkout", 2, 120*time.Second)
	r := ro.Status.Releases
	if len(r) != 2 || r[0].Outcome != "Superseded" || r[0].Images["checkout"] != "shop/checkout:2" ||
		r[1].Outcome != "Succeeded" || r[1].Images["checkout"] != "shop/checkout:3" {
		t.Fatalf("releases %+v, want shop/checkout:2 Superseded then shop/checkout:3 Succeeded", r)
	}
	// Traffic went back to stable before the new release's first step.
	w := log.get()
	if i := slices.Index(w, 0); i < 0 || !slices.Contains(w[i:], 10) {
		t.Errorf("canary weights %v: want a return to 0 before the new release's 10%%", w)
	}
	e.assertServingStable("shop/checkout:3")
}

// TestWorkloadCanaryNeverReadyFailsAtProgressDeadline: a template whose
// pods never become ready fails its release at progressDeadline, with no
// traffic sent to it, and stable serves on.
func TestWorkloadCanaryNeverReadyFailsAtProgressDeadline(t *testing.T) {
	e := newMeshEnv(t, 50, "")
	e.workloadDeployment()
	e.deliver(3*time.Second, func(r *v1alpha1.Rollout) { r.Spec.ProgressDeadline = dur(8 * time.Second) })
	log := e.watchWeights("primary")
	e.kubectl("patch", "deployment/checkout", "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"meshsim.serin.dev/never-ready":"true"}},"spec":{"containers":[{"name":"checkout","image":"shop/checkout:2"}]}}}}`)
	ro := e.waitRelease("checkout", 1, 60*time.Second)
	rel := ro.Status.Releases[0]
	if rel.Outcome != "Failed" || !strings.Contains(rel.Reason, "not ready within progressDeadline 8s") {
		t.Fatalf("release %+v, want Failed at the progress deadline", rel)
	}
	if w := log.get(); slices.ContainsFunc(w, func(x int32) bool { return x != 0 }) {
		t.Errorf("canary weights %v: traffic went to a canary that was never ready", w)
	}
	e.assertServingStable("shop/checkout:1")
}

// TestWorkloadReleasesAreBounded: status.releases keeps the latest
// MaxReleases. Templates without the sidecar's resources are refused at
// once, so many releases take little time.
func TestWorkloadReleasesAreBounded(t *testing.T) {
	e := newMeshEnv(t, 20, "")
	e.workloadDeployment()
	e.deliver(3*time.Second, nil)
	e.kubectl("annotate", "deployment/checkout", "--overwrite", "serin.dev/test=bounded") // not the template: no release
	n := v1alpha1.MaxReleases + 3
	for i := 1; i <= n; i++ {
		e.kubectl("patch", "deployment/checkout", "-p", fmt.Sprintf(
			`{"spec":{"template":{"metadata":{"annotations":{"sidecar.istio.io/proxyCPULimit":null}},"spec":{"containers":[{"name":"checkout","image":"shop/checkout:%d"}]}}}}`, 100+i))
		e.waitRelease("checkout", min(i, v1alpha1.MaxReleases), 30*time.Second)
		e.eventually(30*time.Second, fmt.Sprintf("release of shop/checkout:%d", 100+i), func() (bool, string) {
			r := e.get("checkout").Status.Releases
			last := r[len(r)-1]
			return last.Images["checkout"] == fmt.Sprintf("shop/checkout:%d", 100+i) && last.Outcome != "", fmt.Sprintf("%+v", last)
		})
	}
	ro := e.get("checkout")
	r := ro.Status.Releases
	if len(r) != v1alpha1.MaxReleases || r[len(r)-1].Images["checkout"] != fmt.Sprintf("shop/checkout:%d", 100+n) ||
		r[0].Images["checkout"] != fmt.Sprintf("shop/checkout:%d", 100+n-v1alpha1.MaxReleases+1) {
		t.Fatalf("%d releases from %v to %v, want the latest %d", len(r), r[0].Images, r[len(r)-1].Images, v1alpha1.MaxReleases)
	}
	for _, rel := range r {
		if rel.Outcome != "Failed" || !strings.Contains(rel.Reason, "CPU limit") {
			t.Fatalf("release %+v, want refused for the sidecar's CPU limit", rel)
		}
	}
	e.assertServingStable("shop/checkout:1")
}
