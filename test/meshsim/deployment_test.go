package meshsim

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Pure tests of the Deployment stand-in: label selection, the split by
// ready pods, the rolling-update model, the status it writes and the
// template annotations.

// depWorkload is a Deployment workload of checkout with these labels.
func depWorkload(name, hash string, ready int32, labels map[string]string) *workload {
	l := map[string]string{"app": Checkout}
	for k, v := range labels {
		l[k] = v
	}
	return &workload{app: Checkout, version: l["version"], namespace: "shop",
		dep: &deployed{name: name, hash: hash, labels: l, serviceAccount: "default", ready: ready}}
}

func TestSubsetSelectsByLabels(t *testing.T) {
	stable := depWorkload("checkout-stable", "a", 2, map[string]string{"serin.dev/track": "stable", "version": "v1"})
	canary := depWorkload("checkout-canary", "b", 1, map[string]string{"serin.dev/track": "canary", "version": "v1"})
	ws := []*workload{canary, stable}
	for _, tc := range []struct {
		name string
		sel  map[string]string
		want []string
	}{
		{"track stable", map[string]string{"app": Checkout, "serin.dev/track": "stable"}, []string{"checkout-stable"}},
		{"track canary", map[string]string{"serin.dev/track": "canary"}, []string{"checkout-canary"}},
		{"shared version selects both", map[string]string{"version": "v1"}, []string{"checkout-canary", "checkout-stable"}},
		{"all labels must hold", map[string]string{"version": "v1", "serin.dev/track": "none"}, nil},
		{"a label the pods lack", map[string]string{"tier": "web"}, nil},
		{"no labels select every pod", map[string]string{}, []string{"checkout-canary", "checkout-stable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range selectWorkloads(ws, tc.sel) {
				got = append(got, w.name())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("select %v = %v, want %v", tc.sel, got, tc.want)
			}
		})
	}
}

func TestStaticCatalogSubsetsByLabels(t *testing.T) {
	cat := newCatalog("shop")
	h := cat.hosts[fqdn(Checkout, "shop")]
	for _, tc := range []struct {
		sel  map[string]string
		want string
	}{
		{map[string]string{"app": Checkout}, "checkout-v1"}, // several: the default version
		{map[string]string{"app": Checkout, "version": "v2"}, "checkout-v2"},
		{map[string]string{"app": Checkout, "security.istio.io/tlsMode": "istio", "version": "v2"}, "checkout-v2"},
		{map[string]string{"app": Checkout, "serin.dev/track": "canary"}, ""},
	} {
		w, err := cat.staticTarget(h, tc.sel)
		if tc.want == "" {
			if err == nil {
				t.Errorf("staticTarget(%v) = %s, want an error", tc.sel, w.name())
			}
			continue
		}
		if err != nil || w.name() != tc.want {
			t.Errorf("staticTarget(%v) = %v, %v; want %s", tc.sel, w, err, tc.want)
		}
	}
}

func TestPickReadySplitsByReadyReplicas(t *testing.T) {
	seed := testSeed(t)
	a := depWorkload("checkout-a", "h1", 3, nil)
	b := depWorkload("checkout-b", "h2", 1, nil)
	none := depWorkload("checkout-c", "h3", 0, nil)
	ws := []*workload{a, b, none}
	r := newStream(seed, "test")
	const n = 4000
	counts := map[string]int{}
	for range n {
		w, _, err := pickReady(ws, map[string]string{"app": Checkout}, r.float64)
		if err != nil {
			t.Fatalf("pickReady: %v", err)
		}
		counts[w.name()]++
	}
	// Binomial at p = 0.75 over 4000: sd 0.0068; four of them.
	if got := float64(counts["checkout-a"]) / n; math.Abs(got-0.75) > 0.03 {
		t.Errorf("checkout-a (3 of 4 ready pods) got %.3f of the requests (%v), want 0.75±0.03", got, counts)
	}
	if counts["checkout-c"] != 0 {
		t.Errorf("checkout-c, with no ready pod, got %d requests", counts["checkout-c"])
	}

	_, names, err := pickReady(ws, map[string]string{"app": Checkout, "version": ""}, r.float64)
	if err == nil || names != nil {
		t.Errorf("no workload has version \"\": names %v, err %v; want none and an error", names, err)
	}
	_, names, err = pickReady([]*workload{none, depWorkload("checkout-c", "h4", 0, nil)}, nil, r.float64)
	if err == nil || !slices.Equal(names, []string{"checkout-c"}) {
		t.Errorf("no ready pod: names %v, err %v; want [checkout-c] and an error", names, err)
	}
	_, _, err = pickReady(ws, map[string]string{"tier": "x"}, r.float64)
	if !errors.Is(err, errNoEndpoint) {
		t.Errorf("nothing selected: err %v, want errNoEndpoint", err)
	}
}

// deployment is a Deployment of checkout with n replicas.
func deployment(n int32, mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop", Generation: 3},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(n),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": Checkout, "version": "v1"}}}},
	}
	for _, m := range mutate {
		m(d)
	}
	return d
}

func TestDeploymentStatus(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0.Add(10 * time.Second)
	ready := func(hash string, at time.Duration) podState {
		return podState{hash: hash, created: t0, readyAt: t0.Add(at)}
	}
	never := podState{hash: "new", created: t0}
	type want struct {
		replicas, updated, ready, unavailable int32
		available                             corev1.ConditionStatus
		progressing                           string
	}
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		pods []podState
		want want
	}{
		{"starting", deployment(2), []podState{ready("new", 20*time.Second), ready("new", 20*time.Second)},
			want{2, 2, 0, 2, corev1.ConditionFalse, "ReplicaSetUpdated"}},
		{"ready", deployment(2), []podState{ready("new", 2*time.Second), ready("new", 2*time.Second)},
			want{2, 2, 2, 0, corev1.ConditionTrue, "NewReplicaSetAvailable"}},
		{"rolling: old pods serve", deployment(2),
			[]podState{ready("old", 0), ready("old", 0), ready("new", 20*time.Second), ready("new", 20*time.Second)},
			want{4, 2, 2, 0, corev1.ConditionTrue, "ReplicaSetUpdated"}},
		{"never ready within the deadline", deployment(1, func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = ptr.To[int32](30) }),
			[]podState{never}, want{1, 1, 0, 1, corev1.ConditionFalse, "ReplicaSetUpdated"}},
		{"never ready past the deadline", deployment(1, func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = ptr.To[int32](5) }),
			[]podState{never}, want{1, 1, 0, 1, corev1.ConditionFalse, "ProgressDeadlineExceeded"}},
		{"scaled to zero", deployment(0), nil, want{0, 0, 0, 0, corev1.ConditionTrue, "NewReplicaSetAvailable"}},
		{"one of four unavailable is within 25%", deployment(4),
			[]podState{ready("new", 0), ready("new", 0), ready("new", 0), ready("new", 20*time.Second)},
			want{4, 4, 3, 1, corev1.ConditionTrue, "ReplicaSetUpdated"}},
		{"maxUnavailable 0 asks for all", deployment(4, func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0))}
		}), []podState{ready("new", 0), ready("new", 0), ready("new", 0), ready("new", 20*time.Second)},
			want{4, 4, 3, 1, corev1.ConditionFalse, "ReplicaSetUpdated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := deploymentStatus(tc.d, "new", tc.pods, now)
			got := want{st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.UnavailableReplicas,
				cond(st, appsv1.DeploymentAvailable).Status, cond(st, appsv1.DeploymentProgressing).Reason}
			if got != tc.want {
				t.Errorf("status %+v, want %+v", got, tc.want)
			}
			if st.ObservedGeneration != 3 || st.AvailableReplicas != st.ReadyReplicas {
				t.Errorf("observedGeneration %d, available %d; want 3 and the ready pods", st.ObservedGeneration, st.AvailableReplicas)
			}
			if r := cond(st, appsv1.DeploymentAvailable).Reason; (r == "MinimumReplicasAvailable") != (tc.want.available == corev1.ConditionTrue) {
				t.Errorf("Available reason %s with status %s", r, tc.want.available)
			}
			// Computed again over its own result, the status is the same:
			// the stand-in writes only when something changed.
			d := tc.d.DeepCopy()
			d.Status = st
			if again := deploymentStatus(d, "new", tc.pods, now.Add(300*time.Millisecond)); !statusEqual(again, st) {
				t.Errorf("recomputed status differs:\n%+v\n%+v", again, st)
			}
		})
	}
}

// cond returns st's condition of type c.
func cond(st appsv1.DeploymentStatus, c appsv1.DeploymentConditionType) appsv1.DeploymentCondition {
	for _, x := range st.Conditions {
		if x.Type == c {
			return x
		}
	}
	return appsv1.DeploymentCondition{}
}

// statusEqual compares statuses, times by their instant.
func statusEqual(a, b appsv1.DeploymentStatus) bool {
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message ||
			!x.LastUpdateTime.Equal(&y.LastUpdateTime) || !x.LastTransitionTime.Equal(&y.LastTransitionTime) {
			return false
		}
	}
	a.Conditions, b.Conditions = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestStepPodsRollsWithoutUnavailability(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := 0
	fresh := func(hash string, at time.Time, delay time.Duration) func() *modelPod {
		return func() *modelPod {
			n++
			p := &modelPod{name: hash + "-" + string(rune('a'+n))}
			p.hash, p.created, p.readyAt = hash, at, at.Add(delay)
			return p
		}
	}
	count := func(pods []*modelPod, hash string, now time.Time) (all, ready int) {
		for _, p := range pods {
			if p.hash == hash {
				all++
				if p.ready(now) {
					ready++
				}
			}
		}
		return all, ready
	}
	pods, gone := stepPods(nil, "v1", 2, t0, fresh("v1", t0, 2*time.Second))
	if all, ready := count(pods, "v1", t0); all != 2 || ready != 0 || len(gone) != 0 {
		t.Fatalf("new Deployment: %d pods, %d ready, %d gone; want 2, 0, 0", all, ready, len(gone))
	}
	t1 := t0.Add(3 * time.Second)
	pods, _ = stepPods(pods, "v1", 2, t1, fresh("v1", t1, 2*time.Second))
	if _, ready := count(pods, "v1", t1); ready != 2 {
		t.Fatalf("after the delay %d ready, want 2", ready)
	}

	// A new template: its pods start while the old ones keep serving.
	pods, gone = stepPods(pods, "v2", 2, t1, fresh("v2", t1, 2*time.Second))
	oldAll, oldReady := count(pods, "v1", t1)
	newAll, _ := count(pods, "v2", t1)
	if oldAll != 2 || oldReady != 2 || newAll != 2 || len(gone) != 0 {
		t.Fatalf("rolling: old %d (%d ready), new %d, gone %d; want 2 (2), 2, 0", oldAll, oldReady, newAll, len(gone))
	}
	t2 := t1.Add(2 * time.Second)
	pods, gone = stepPods(pods, "v2", 2, t2, fresh("v2", t2, 2*time.Second))
	if oldAll, _ := count(pods, "v1", t2); oldAll != 0 || len(gone) != 2 {
		t.Fatalf("new pods ready: %d old pods left, %d gone; want 0 and 2", oldAll, len(gone))
	}

	// A template that never becomes ready keeps the old pods forever.
	neverFresh := func() *modelPod { p := fresh("v3", t2, 0)(); p.readyAt = time.Time{}; return p }
	pods, _ = stepPods(pods, "v3", 2, t2, neverFresh)
	later := t2.Add(time.Hour)
	pods, _ = stepPods(pods, "v3", 2, later, neverFresh)
	if _, ready := count(pods, "v2", later); ready != 2 {
		t.Fatalf("never-ready template: %d old pods ready an hour later, want 2", ready)
	}

	// Scaling up adds unready pods; scaling to zero removes every pod.
	pods, _ = stepPods(pods, "v2", 3, later, fresh("v2", later, 2*time.Second))
	if all, ready := count(pods, "v2", later); all != 3 || ready != 2 {
		t.Fatalf("scaled to 3: %d pods, %d ready; want 3, 2", all, ready)
	}
	if oldAll, _ := count(pods, "v3", later); oldAll != 0 {
		t.Fatalf("rollback to v2: %d unready v3 pods left, want 0", oldAll)
	}
	pods, gone = stepPods(pods, "v2", 0, later, nil)
	if len(pods) != 0 || len(gone) != 3 {
		t.Fatalf("scaled to 0: %d pods left, %d gone; want 0 and 3", len(pods), len(gone))
	}
}

func TestParseBehaviourErrors(t *testing.T) {
	if f, err := ParseBehaviour(`{"errorRate":0.2,"latencyMs":30,"downstreamCalls":3}`); err != nil ||
		f != (Fault{ErrorRate: 0.2, LatencyMs: 30, DownstreamCalls: 3}) {
		t.Fatalf("ParseBehaviour: %+v, %v", f, err)
	}
	for _, tc := range []struct {
		in      string
		invalid bool // out of range, not malformed
	}{
		{`{"errorrate":0.2}`, false}, // JSON names are exact here: unknown field
		{`{"errorRate":"high"}`, false},
		{`{"errorRate":0.2} {}`, false},
		{`errorRate=0.2`, false},
		{``, false},
		{`{"errorRate":1.5}`, true},
		{`{"latencyMs":-1}`, true},
		{`{"downstreamCalls":99}`, true},
	} {
		_, err := ParseBehaviour(tc.in)
		if err == nil {
			t.Errorf("ParseBehaviour(%q): no error", tc.in)
			continue
		}
		if errors.Is(err, ErrInvalidFault) != tc.invalid || !strings.Contains(err.Error(), "behaviour") {
			t.Errorf("ParseBehaviour(%q): %v (ErrInvalidFault %v, want %v)", tc.in, err, errors.Is(err, ErrInvalidFault), tc.invalid)
		}
	}
}

func TestReadTemplateIgnoresBadAnnotations(t *testing.T) {
	d := deployment(1, func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{
			AnnotationBehaviour: `{"errorRate":2}`, AnnotationStartDelay: "soon", AnnotationNeverReady: "yes",
		}
	})
	tm := readTemplate(d, 3*time.Second)
	if tm.behaviour != (Fault{}) || tm.startDelay != 3*time.Second || tm.neverReady || len(tm.problems) != 3 {
		t.Errorf("bad annotations: behaviour %+v, delay %v, never ready %v, problems %q; want all ignored and 3 problems",
			tm.behaviour, tm.startDelay, tm.neverReady, tm.problems)
	}
	d.Spec.Template.Annotations = map[string]string{
		AnnotationBehaviour: `{"errorRate":1}`, AnnotationStartDelay: "5s", AnnotationNeverReady: "true",
	}
	good := readTemplate(d, 3*time.Second)
	if good.behaviour.ErrorRate != 1 || good.startDelay != 5*time.Second || !good.neverReady || len(good.problems) != 0 {
		t.Errorf("good annotations read as %+v", good)
	}
	if good.hash == tm.hash || len(good.hash) != 10 {
		t.Errorf("template hashes %q and %q: want 10 characters, different for different templates", good.hash, tm.hash)
	}
	if good.labels[labelPodTemplateHash] != good.hash || good.labels["service.istio.io/canonical-revision"] != "v1" {
		t.Errorf("pod labels %v: want the hash and the injected canonical revision", good.labels)
	}
}

func TestTelemetryOfDeploymentWorkloads(t *testing.T) {
	cat := newCatalog("shop")
	if got, want := peerLabels(cat.workloads["checkout-v2"]),
		(peer{"checkout-v2", "shop", Checkout, "v2", Checkout, "v2", "spiffe://cluster.local/ns/shop/sa/checkout", clusterName}); got != want {
		t.Errorf("static checkout-v2: %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   peer
	}{
		{map[string]string{"version": "v3"},
			peer{"checkout", "shop", Checkout, "v3", Checkout, "v3", "spiffe://cluster.local/ns/shop/sa/default", clusterName}},
		{nil, peer{"checkout", "shop", Checkout, unknown, Checkout, "latest", "spiffe://cluster.local/ns/shop/sa/default", clusterName}},
		{map[string]string{"version": "v3", "service.istio.io/canonical-revision": "r7", "service.istio.io/canonical-name": "shop-checkout"},
			peer{"checkout", "shop", Checkout, "v3", "shop-checkout", "r7", "spiffe://cluster.local/ns/shop/sa/default", clusterName}},
	} {
		if got := peerLabels(depWorkload("checkout", "h", 1, tc.labels)); got != tc.want {
			t.Errorf("labels %v: %+v, want %+v", tc.labels, got, tc.want)
		}
	}
}

func TestFaultPlusBehaviour(t *testing.T) {
	api := Fault{ErrorRate: 0.2, LatencyMs: 100, DownstreamCalls: 2}
	if got := api.plus(Fault{}); got != api {
		t.Errorf("no behaviour: %+v, want %+v", got, api)
	}
	got := api.plus(Fault{ErrorRate: 0.5, LatencyMs: 50, LatencyJitterMs: 5, DownstreamCalls: 3})
	want := Fault{ErrorRate: 0.6, LatencyMs: 150, LatencyJitterMs: 5, DownstreamCalls: 3}
	if math.Abs(got.ErrorRate-want.ErrorRate) > 1e-12 {
		t.Errorf("error rate %v, want %v", got.ErrorRate, want.ErrorRate)
	}
	got.ErrorRate = want.ErrorRate
	if got != want {
		t.Errorf("plus: %+v, want %+v", got, want)
	}
}
