package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	istioapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/rollout/v1alpha1"
	"github.com/serin-dev/serin/test/stack"
)

// richVS has routes and fields serin must leave byte-identical.
func (e *env) richVS() *networkingv1.VirtualService {
	vs := e.plainVS()
	vs.Labels = map[string]string{"team": "payments"}
	vs.Annotations = map[string]string{"owner": "platform", "note": "hand-written"}
	vs.Spec.Gateways = []string{"mesh"}
	vs.Spec.Http = []*istioapi.HTTPRoute{
		{
			Name:  "beta-users",
			Match: []*istioapi.HTTPMatchRequest{{Headers: map[string]*istioapi.StringMatch{"x-beta": {MatchType: &istioapi.StringMatch_Exact{Exact: "1"}}}}},
			Route: []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: e.host(), Subset: "v1"}}},
		},
		{
			Name:             "primary",
			Route:            e.dests(100, 0),
			Timeout:          durationpb.New(3 * time.Second),
			Retries:          &istioapi.HTTPRetry{Attempts: 3, PerTryTimeout: durationpb.New(time.Second), RetryOn: "5xx,reset"},
			Mirror:           &istioapi.Destination{Host: "shadow." + e.ns + ".svc.cluster.local"},
			MirrorPercentage: &istioapi.Percent{Value: 5},
			Headers:          &istioapi.Headers{Request: &istioapi.Headers_HeaderOperations{Set: map[string]string{"x-canary-by": "serin"}}},
		},
		{
			Name:       "legacy",
			Match:      []*istioapi.HTTPMatchRequest{{Uri: &istioapi.StringMatch{MatchType: &istioapi.StringMatch_Prefix{Prefix: "/legacy"}}}},
			Route:      []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: e.host(), Subset: "v1"}, Weight: 100}},
			CorsPolicy: &istioapi.CorsPolicy{AllowMethods: []string{"GET"}, AllowCredentials: wrapperspb.Bool(false)},
		},
	}
	return vs
}

// TestRolloutWalksEveryStep: 10 -> 25 -> 50 -> 100 and Succeeded, with each
// weight seen on the VirtualService, and every other field of a rich
// VirtualService unchanged.
func TestRolloutWalksEveryStep(t *testing.T) {
	e := newEnv(t)
	before := e.mesh(e.richVS())
	p := e.startController()
	log := e.watchWeights("primary")
	e.rollout("walk", func(r *v1alpha1.Rollout) { r.Spec.Route = "primary" })
	ro := e.waitPhase("walk", v1alpha1.PhaseSucceeded, 60*time.Second)

	e.eventually(5*time.Second, "weight 100 on the route", func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == 0 && c == 100, fmt.Sprintf("%d/%d", s, c)
	})
	if got := log.get(); !slices.Equal(got, []int32{0, 10, 25, 50, 100}) {
		t.Errorf("canary weights seen on the VirtualService: %v, want [0 10 25 50 100]", got)
	}
	var reasons []string
	for _, h := range ro.Status.History {
		reasons = append(reasons, h.Reason)
	}
	if want := []string{"Started", "StepAdvanced", "StepAdvanced", "Succeeded"}; !slices.Equal(reasons, want) {
		t.Errorf("history reasons %v, want %v", reasons, want)
	}
	e.eventually(5*time.Second, "weight 100 confirmed in the status", func() (bool, string) {
		ro = e.get("walk")
		return ro.Status.AppliedWeight == 100, fmt.Sprint(ro.Status.AppliedWeight)
	})
	if ro.Status.CurrentStep != 3 || ro.Status.CanaryWeight != 100 {
		t.Errorf("status step %d weight %d, want 3/100", ro.Status.CurrentStep, ro.Status.CanaryWeight)
	}
	evs := &eventsv1.EventList{}
	must(t, e.c.List(e.ctx, evs, client.InNamespace(e.ns)))
	seen := map[string]bool{}
	for _, ev := range evs.Items {
		if ev.Regarding.Name == "walk" {
			seen[ev.Reason] = true
		}
	}
	for _, r := range []string{"Started", "StepAdvanced", "Succeeded"} {
		if !seen[r] {
			t.Errorf("no Kubernetes Event with reason %s for the rollout (saw %v)", r, seen)
		}
	}
	after := e.vs()
	if a, b := maskWeights(t, before, "primary"), maskWeights(t, after, "primary"); a != b {
		t.Errorf("fields other than the two weights changed:\nbefore %s\nafter %s", a, b)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": `controller_runtime_reconcile_total{controller="rollout"`} {
		body := httpGet(t, "http://"+p.addr+path)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s does not contain %q", path, want)
		}
	}
	// SIGTERM shuts the controller down cleanly.
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("controller exited with %d on SIGTERM, want 0", code)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("controller did not stop within 15s of SIGTERM")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// maskWeights renders the VirtualService's labels, annotations and spec
// with the managed route's weights blanked.
func maskWeights(t *testing.T, vs *networkingv1.VirtualService, route string) string {
	c := vs.DeepCopy()
	for _, r := range c.Spec.Http {
		if r.Name == route {
			for _, d := range r.Route {
				d.Weight = -1
			}
		}
	}
	return jsonOf(t, map[string]any{"labels": c.Labels, "annotations": c.Annotations, "spec": &c.Spec})
}

// TestAbortMidway: an abort returns the route to 100/0 at once.
func TestAbortMidway(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	log := e.watchWeights("primary")
	e.rollout("abort", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(3 * time.Second) })
	e.eventually(30*time.Second, "weight 25", func() (bool, string) { return log.has(25), fmt.Sprint(log.get()) })

	ro := e.get("abort")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Annotations = map[string]string{v1alpha1.AnnotationAbort: "latency looks off", v1alpha1.AnnotationAbortBy: "alice"}
	must(t, e.c.Patch(e.ctx, ro, patch))

	ro = e.waitPhase("abort", v1alpha1.PhaseAborted, 10*time.Second)
	if !strings.Contains(ro.Status.Message, "aborted by alice: latency looks off") {
		t.Errorf("message %q does not say who aborted and why", ro.Status.Message)
	}
	e.eventually(5*time.Second, "route back at 100/0", func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == 100 && c == 0, fmt.Sprintf("%d/%d", s, c)
	})
	if got := log.get(); got[len(got)-1] != 0 || slices.Contains(got, 100) {
		t.Errorf("weights seen %v: want back to 0 and never 100", got)
	}
}

// TestPromote: the promote annotation jumps to 100 and Succeeded.
func TestPromote(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	log := e.watchWeights("primary")
	e.rollout("promo", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	e.eventually(30*time.Second, "weight 10", func() (bool, string) { return log.has(10), fmt.Sprint(log.get()) })
	ro := e.get("promo")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Annotations = map[string]string{v1alpha1.AnnotationPromote: "true", v1alpha1.AnnotationPromoteBy: "carol"}
	must(t, e.c.Patch(e.ctx, ro, patch))
	ro = e.waitPhase("promo", v1alpha1.PhaseSucceeded, 10*time.Second)
	if !strings.Contains(ro.Status.Message, "promoted to 100% by carol") {
		t.Errorf("message %q does not say who promoted", ro.Status.Message)
	}
	e.eventually(5*time.Second, "route at 0/100", func() (bool, string) {
		s, c := weights(e.vs(), "primary")
		return s == 0 && c == 100, fmt.Sprintf("%d/%d", s, c)
	})
	if got := log.get(); !slices.Equal(got, []int32{0, 10, 100}) {
		t.Errorf("weights seen %v, want [0 10 100]", got)
	}
}

// TestControllerKilledMidRollout kills the controller with SIGKILL three
// times, at different steps; each new process resumes from the status and
// the rollout finishes with no step skipped or repeated.
func TestControllerKilledMidRollout(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	log := e.watchWeights("primary")
	p := e.startController()
	e.rollout("restart", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(2 * time.Second) })
	for _, w := range []int32{10, 25, 50} {
		e.eventually(30*time.Second, fmt.Sprintf("weight %d", w), func() (bool, string) { return log.has(w), fmt.Sprint(log.get()) })
		p.kill()
		time.Sleep(500 * time.Millisecond) // the controller is down for a while
		p = e.startController()
	}
	ro := e.waitPhase("restart", v1alpha1.PhaseSucceeded, 60*time.Second)
	// The status records the decision a moment before the weight is written.
	e.eventually(5*time.Second, "weight 100 on the route", func() (bool, string) { return log.has(100), fmt.Sprint(log.get()) })
	if got := log.get(); !slices.Equal(got, []int32{0, 10, 25, 50, 100}) {
		t.Errorf("canary weights seen: %v, want [0 10 25 50 100] (no step skipped or repeated)", got)
	}
	var steps []string
	for _, h := range ro.Status.History {
		steps = append(steps, h.To)
	}
	want := []string{"Progressing 1/4 (10%)", "Progressing 2/4 (25%)", "Progressing 3/4 (50%)", "Succeeded 4/4 (100%)"}
	if !slices.Equal(steps, want) {
		t.Errorf("history %v, want %v", steps, want)
	}
}

// TestHandEditPausesWithReason: a hand edit of the weights pauses the
// rollout, says so, and is not overwritten; resuming continues.
func TestHandEditPausesWithReason(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	log := e.watchWeights("primary")
	e.rollout("drift", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(4 * time.Second) })
	e.eventually(30*time.Second, "weight 10", func() (bool, string) { return log.has(10), fmt.Sprint(log.get()) })

	vs := e.vs()
	vs.Spec.Http[0].Route = e.dests(70, 30)
	_, err := e.istio.NetworkingV1().VirtualServices(e.ns).Update(e.ctx, vs, metav1.UpdateOptions{})
	must(t, err)

	ro := e.waitPhase("drift", v1alpha1.PhasePaused, 10*time.Second)
	if !strings.Contains(ro.Status.Message, "edited by someone else: canary weight is 30% but serin set 10%") || !ro.Spec.Paused {
		t.Fatalf("paused=%v message %q: want spec.paused and a reason naming the hand edit", ro.Spec.Paused, ro.Status.Message)
	}
	time.Sleep(2 * time.Second) // several ticks: the hand edit must stay
	if s, c := weights(e.vs(), "primary"); s != 70 || c != 30 {
		t.Fatalf("serin overwrote the hand edit: %d/%d, want 70/30", s, c)
	}

	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Paused = false
	must(t, e.c.Patch(e.ctx, ro, patch))
	e.waitPhase("drift", v1alpha1.PhaseSucceeded, 60*time.Second)
}

// TestPreflightFailures: each missing piece fails the rollout with a clear
// message and nothing is written to the VirtualService.
func TestPreflightFailures(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(e *env)
		mutate  func(r *v1alpha1.Rollout)
		message string
	}{
		{"missing VirtualService", func(e *env) {}, nil, "VirtualService"},
		{"missing route", func(e *env) { e.mesh(nil) }, func(r *v1alpha1.Rollout) { r.Spec.Route = "nope" }, `"nope"`},
		{"missing subset", func(e *env) { e.mesh(nil, "v1") }, nil, `"v2"`},
		{"missing canary destination", func(e *env) {
			vs := e.plainVS()
			vs.Spec.Http[0].Route = vs.Spec.Http[0].Route[:1]
			e.mesh(vs)
		}, nil, "v2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			rv := ""
			if vs, err := e.istio.NetworkingV1().VirtualServices(e.ns).Get(e.ctx, "checkout", metav1.GetOptions{}); err == nil {
				rv = vs.ResourceVersion
			}
			e.startController()
			e.rollout("pf", tc.mutate)
			ro := e.waitPhase("pf", v1alpha1.PhaseFailed, 20*time.Second)
			if !strings.Contains(ro.Status.Message, "preflight failed") || !strings.Contains(ro.Status.Message, tc.message) {
				t.Errorf("message %q: want a preflight failure naming %s", ro.Status.Message, tc.message)
			}
			if rv != "" {
				if got := e.vs().ResourceVersion; got != rv {
					t.Errorf("VirtualService written during a failed preflight: resourceVersion %s -> %s", rv, got)
				}
			}
		})
	}
}

// TestSecondRolloutOnARouteFails: however two Rollouts on one route are
// created, the younger fails its preflight and writes nothing.
func TestSecondRolloutOnARouteFails(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.rollout("first", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	time.Sleep(1100 * time.Millisecond) // creation timestamps have second precision
	e.rollout("second", nil)
	e.startController()
	ro := e.waitPhase("second", v1alpha1.PhaseFailed, 20*time.Second)
	if !strings.Contains(ro.Status.Message, "Rollout first is already in progress on VirtualService") {
		t.Errorf("message %q does not name the rollout in the way", ro.Status.Message)
	}
	// The first goes on undisturbed (the controller may reconcile it
	// after the second).
	e.waitPhase("first", v1alpha1.PhaseProgressing, 20*time.Second)
}

// TestMalformedSpecsRejected: the API server itself refuses bad specs, with
// a clear error, and stores nothing.
func TestMalformedSpecsRejected(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name    string
		mutate  func(r *v1alpha1.Rollout)
		message string
	}{
		{"steps not increasing", func(r *v1alpha1.Rollout) { r.Spec.Steps = []int32{50, 25, 100} }, "steps must be strictly increasing"},
		{"repeated step", func(r *v1alpha1.Rollout) { r.Spec.Steps = []int32{25, 25, 100} }, "steps must be strictly increasing"},
		{"step over 100", func(r *v1alpha1.Rollout) { r.Spec.Steps = []int32{10, 150, 100} }, "less than or equal to 100"},
		{"step below 1", func(r *v1alpha1.Rollout) { r.Spec.Steps = []int32{0, 100} }, "greater than or equal to 1"},
		{"last step not 100", func(r *v1alpha1.Rollout) { r.Spec.Steps = []int32{10, 50} }, "the last step must be 100"},
		{"stepInterval of 0", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(0) }, "stepInterval must be at least 1s"},
		{"both modes", func(r *v1alpha1.Rollout) { r.Spec.StableHost, r.Spec.CanaryHost = "a", "b" }, "and only one of them"},
		{"no mode", func(r *v1alpha1.Rollout) { r.Spec.StableSubset, r.Spec.CanarySubset = "", "" }, "give either stableSubset and canarySubset"},
		{"workload and subsets", func(r *v1alpha1.Rollout) { r.Spec.Workload = &v1alpha1.WorkloadRef{Deployment: "checkout"} }, "and only one of them"},
		{"same subsets", func(r *v1alpha1.Rollout) { r.Spec.CanarySubset = "v1" }, "must differ"},
		{"no VirtualService", func(r *v1alpha1.Rollout) { r.Spec.VirtualService = "" }, "virtualService"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ro := &v1alpha1.Rollout{
				ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: e.ns},
				Spec: v1alpha1.RolloutSpec{VirtualService: "checkout", StableSubset: "v1", CanarySubset: "v2",
					StepInterval: dur(time.Second)},
			}
			tc.mutate(ro)
			err := e.c.Create(e.ctx, ro)
			if err == nil || !apierrors.IsInvalid(err) {
				t.Fatalf("create: %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not contain %q", err.Error(), tc.message)
			}
			got := &v1alpha1.Rollout{}
			if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: "bad"}, got); !apierrors.IsNotFound(err) {
				t.Errorf("a rejected Rollout was stored: %v", err)
			}
		})
	}
}

// TestDeleteMidwayRestores: deleting a Rollout mid-way restores 100/0
// through the finalizer before the object goes.
func TestDeleteMidwayRestores(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	log := e.watchWeights("primary")
	ro := e.rollout("del", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(5 * time.Second) })
	e.eventually(30*time.Second, "weight 10", func() (bool, string) { return log.has(10), fmt.Sprint(log.get()) })
	must(t, e.c.Delete(e.ctx, ro))
	e.eventually(10*time.Second, "Rollout gone", func() (bool, string) {
		err := e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: "del"}, &v1alpha1.Rollout{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if s, c := weights(e.vs(), "primary"); s != 100 || c != 0 {
		t.Errorf("after delete the route is %d/%d, want 100/0", s, c)
	}
}

// TestIdleReconcilesWriteNothing: a paused rollout is still analysed (a
// held canary that regresses is rolled back), but once its first verdict
// is stored, ticks that change only the latest figures are not written
// (TestKubectlWatchPrintsEachChangeOnce holds it for 12 s), and the
// VirtualService is never written.
func TestIdleReconcilesWriteNothing(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("idle", func(r *v1alpha1.Rollout) { r.Spec.StepInterval = dur(30 * time.Second) })
	e.eventually(20*time.Second, "weight 10 applied", func() (bool, string) {
		ro := e.get("idle")
		return ro.Status.AppliedWeight == 10, fmt.Sprint(ro.Status.AppliedWeight)
	})
	ro := e.get("idle")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Paused = true
	must(t, e.c.Patch(e.ctx, ro, patch))
	e.waitPhase("idle", v1alpha1.PhasePaused, 10*time.Second)
	e.eventually(10*time.Second, "a verdict stored while paused", func() (bool, string) {
		a := e.get("idle").Status.Analysis
		return a.LastTickAt != nil && a.Since != nil, fmt.Sprintf("%+v", a)
	})

	before := e.get("idle")
	roRV, vsRV := before.ResourceVersion, e.vs().ResourceVersion
	time.Sleep(4 * time.Second) // four analysis intervals
	if got := e.get("idle"); got.ResourceVersion != roRV {
		t.Errorf("paused Rollout was written: resourceVersion %s -> %s\nbefore: %+v\nafter: %+v",
			roRV, got.ResourceVersion, before.Status, got.Status)
	}
	if got := e.vs().ResourceVersion; got != vsRV {
		t.Errorf("VirtualService was written while paused: resourceVersion %s -> %s", vsRV, got)
	}
}

// TestKubectl: the printer columns and a server-side dry run of deploy/.
func TestKubectl(t *testing.T) {
	e := newEnv(t)
	e.mesh(nil)
	e.startController()
	e.rollout("cols", nil)
	e.waitPhase("cols", v1alpha1.PhaseSucceeded, 30*time.Second)
	kubectl := filepath.Join(stack.BinDir(), "kubectl")
	out, err := exec.Command(kubectl, "--kubeconfig", st.Kubeconfig, "get", "rollouts", "-n", e.ns).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get rollouts: %v\n%s", err, out)
	}
	header := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	if want := []string{"NAME", "PHASE", "STEP", "WEIGHT", "REASON", "AGE"}; !slices.Equal(header, want) {
		t.Errorf("kubectl get rollouts columns %v, want %v\n%s", header, want, out)
	}
	if !strings.Contains(string(out), "Succeeded") || !strings.Contains(string(out), "100") {
		t.Errorf("kubectl get rollouts does not show the phase and weight:\n%s", out)
	}

	// The dry run needs the namespace; it must create nothing else.
	out, err = exec.Command(kubectl, "--kubeconfig", st.Kubeconfig, "create", "namespace", "serin-system").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "AlreadyExists") {
		t.Fatalf("create namespace: %v\n%s", err, out)
	}
	out, err = exec.Command(kubectl, "--kubeconfig", st.Kubeconfig, "apply", "--dry-run=server", "-k", filepath.Join(stack.RepoRoot(), "deploy")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k deploy/: %v\n%s", err, out)
	}
	for _, want := range []string{"deployment.apps/serin-controller", "clusterrole.rbac.authorization.k8s.io/serin-controller", "customresourcedefinition.apiextensions.k8s.io/rollouts.serin.dev"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}
	out, _ = exec.Command(kubectl, "--kubeconfig", st.Kubeconfig, "get", "deployment", "-n", "serin-system", "serin-controller").CombinedOutput()
	if !strings.Contains(string(out), "NotFound") {
		t.Errorf("the dry run created the Deployment: %s", out)
	}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
