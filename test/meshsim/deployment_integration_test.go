package meshsim

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	apiv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/test/stack"
)

// Integration tests of the kubelet and Deployment controller stand-in on
// the real API server: Deployments become workloads, their status and Pods
// are written as a cluster would hold them, and routing follows their
// labels and readiness.

// kube returns a Kubernetes clientset for the stack's API server.
func kube(t *testing.T) kubernetes.Interface {
	t.Helper()
	kc, err := kubernetes.NewForConfig(st.RESTConfig())
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	return kc
}

// checkoutDeployment is a Deployment called name of the checkout app with
// these extra template labels and annotations.
func checkoutDeployment(ns, name string, replicas int32, labels, annotations map[string]string) *appsv1.Deployment {
	l := map[string]string{"app": Checkout}
	maps.Copy(l, labels)
	sel := map[string]string{"app": Checkout}
	if track, ok := labels["serin.dev/track"]; ok {
		sel["serin.dev/track"] = track
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: Checkout, Image: "serin.dev/demo/checkout:1"}}},
			},
		},
	}
}

// createDeployment creates d.
func createDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if _, err := kube(t).AppsV1().Deployments(d.Namespace).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment %s/%s: %v", d.Namespace, d.Name, err)
	}
}

// updateDeployment gets ns/name, applies change and updates it.
func updateDeployment(t *testing.T, ns, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	c := kube(t).AppsV1().Deployments(ns)
	d, err := c.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Deployment %s/%s: %v", ns, name, err)
	}
	change(d)
	if _, err := c.Update(t.Context(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update Deployment %s/%s: %v", ns, name, err)
	}
}

// waitForStatus waits until ns/name's status, for its latest generation,
// satisfies ok, and returns it.
func waitForStatus(t *testing.T, ns, name string, timeout time.Duration, what string, ok func(appsv1.DeploymentStatus) error) appsv1.DeploymentStatus {
	t.Helper()
	var st appsv1.DeploymentStatus
	eventually(t, timeout, fmt.Sprintf("Deployment %s/%s %s", ns, name, what), func() error {
		d, err := kube(t).AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st = d.Status
		if st.ObservedGeneration != d.Generation {
			return fmt.Errorf("observedGeneration %d of %d", st.ObservedGeneration, d.Generation)
		}
		return ok(st)
	})
	return st
}

// rolledOut checks that every one of n pods is updated, ready and the
// rollout complete.
func rolledOut(n int32) func(appsv1.DeploymentStatus) error {
	return func(s appsv1.DeploymentStatus) error {
		if s.Replicas != n || s.UpdatedReplicas != n || s.ReadyReplicas != n || s.AvailableReplicas != n || s.UnavailableReplicas != 0 {
			return fmt.Errorf("replicas %d updated %d ready %d available %d unavailable %d, want %d of each and 0 unavailable",
				s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas, s.UnavailableReplicas, n)
		}
		return conditionIs(s, appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable")
	}
}

// conditionIs checks one condition of s.
func conditionIs(s appsv1.DeploymentStatus, c appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason string) error {
	got := cond(s, c)
	if got.Status != status || got.Reason != reason {
		return fmt.Errorf("condition %s is %s/%s, want %s/%s", c, got.Status, got.Reason, status, reason)
	}
	return nil
}

// requestsTo counts the requests served by the workload at the destination
// reporter, in the Sim's own registry, with the given response code ("" for
// any).
func requestsTo(t *testing.T, s *Sim, workload, code string) float64 {
	t.Helper()
	want := map[string]string{"reporter": reporterDestination, "destination_workload": workload}
	if code != "" {
		want["response_code"] = code
	}
	n, _ := series(t, s, "istio_requests_total", want)
	return n
}

func TestStackDeploymentBecomesWorkload(t *testing.T) {
	const ns = "shop-deploy"
	s := startMeshWith(t, Options{Namespace: ns, StartDelay: time.Second})
	createDeployment(t, checkoutDeployment(ns, "checkout", 2, map[string]string{"version": "v1"}, nil))
	created := time.Now()
	waitForStatus(t, ns, "checkout", 10*time.Second, "rolled out", rolledOut(2))
	if d := time.Since(created); d < time.Second {
		t.Errorf("ready after %v, before the start delay of 1s", d)
	}
	checkPods(t, ns, "checkout", 2)

	counts, err := s.FireWorkloads(t.Context(), 100)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if counts["checkout"] != 100 {
		t.Fatalf("with Deployment checkout, checkout served %v, want all 100 by it (the static workloads no longer serve)", counts)
	}
	s.SetRPS(50)
	var got float64
	eventually(t, 30*time.Second, "Prometheus sees destination_workload=checkout",
		queryBetween(t.Context(), fmt.Sprintf(`sum(istio_requests_total{reporter="destination",destination_workload_namespace=%q,destination_workload="checkout",destination_version="v1",destination_canonical_revision="v1"})`, ns),
			1, math.Inf(1), &got))
	s.SetRPS(0)

	// A new template whose pods fail every request: the old pods serve
	// until the new ones are ready, then the errors appear.
	updateDeployment(t, ns, "checkout", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "serin.dev/demo/checkout:2"
		d.Spec.Template.Annotations = map[string]string{AnnotationBehaviour: `{"errorRate":1}`, AnnotationStartDelay: "3s"}
	})
	changed := time.Now()
	waitForStatus(t, ns, "checkout", 2*time.Second, "rolling", func(s appsv1.DeploymentStatus) error {
		if s.Replicas != 4 || s.UpdatedReplicas != 2 || s.ReadyReplicas != 2 {
			return fmt.Errorf("replicas %d updated %d ready %d, want 4, 2, 2", s.Replicas, s.UpdatedReplicas, s.ReadyReplicas)
		}
		return conditionIs(s, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated")
	})
	before := requestsTo(t, s, "checkout", "500")
	if _, err := s.FireWorkloads(t.Context(), 100); err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if time.Since(changed) < 3*time.Second {
		if n := requestsTo(t, s, "checkout", "500") - before; n != 0 {
			t.Errorf("while the new pods start, %v requests failed; the old pods should serve them all", n)
		}
	} else {
		t.Logf("the rollout took too long to check the old pods in time (%v)", time.Since(changed))
	}
	waitForStatus(t, ns, "checkout", 10*time.Second, "rolled out again", rolledOut(2))
	before = requestsTo(t, s, "checkout", "500")
	if _, err := s.FireWorkloads(t.Context(), 50); err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if n := requestsTo(t, s, "checkout", "500") - before; n != 50 {
		t.Errorf("after the rollout of errorRate 1, %v of 50 requests failed, want 50", n)
	}
	checkPods(t, ns, "checkout", 2)
	if u := s.UnreadyRequests(); u.Total != 0 {
		t.Errorf("unready requests %+v, want none", u)
	}
}

// checkPods checks that Deployment ns/name has n Pods, of its current
// template, ready, named and labelled as the Deployment controller names
// them, with the sidecar.
func checkPods(t *testing.T, ns, name string, n int) {
	t.Helper()
	kc := kube(t)
	d, err := kc.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hash := templateHash(&d.Spec.Template)
	eventually(t, 5*time.Second, fmt.Sprintf("%d Pods of %s", n, name), func() error {
		all, err := kc.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		var problems []string
		var pods []corev1.Pod
		for _, p := range all.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && ref.Name == name {
				pods = append(pods, p)
			}
		}
		for _, p := range pods {
			ref := metav1.GetControllerOf(&p)
			switch {
			case p.Labels[labelPodTemplateHash] != hash || p.Labels["app"] != Checkout:
				problems = append(problems, fmt.Sprintf("%s has labels %v, want the template's and hash %s", p.Name, p.Labels, hash))
			case !strings.HasPrefix(p.Name, name+"-"+hash+"-") || len(p.Name) != len(name)+1+10+1+5:
				problems = append(problems, "name "+p.Name)
			case ref == nil || ref.Kind != "Deployment" || ref.UID != d.UID:
				problems = append(problems, p.Name+" is not controlled by the Deployment")
			case p.Status.Phase != corev1.PodRunning || !podIsReady(&p) || !stack.KubeletPodCIDR.Contains(mustAddr(p.Status.PodIP)):
				problems = append(problems, fmt.Sprintf("%s is %s, ready %v, IP %s", p.Name, p.Status.Phase, podIsReady(&p), p.Status.PodIP))
			case !slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == "istio-proxy" }):
				problems = append(problems, p.Name+" has no istio-proxy")
			}
		}
		if len(pods) != n || len(problems) > 0 {
			return fmt.Errorf("%d Pods, want %d: %v", len(pods), n, problems)
		}
		return nil
	})
}

// mustAddr parses an IP, or returns the zero address.
func mustAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

func TestStackNeverReadyTemplateExceedsItsDeadline(t *testing.T) {
	const ns = "shop-never"
	s := startMeshWith(t, Options{Namespace: ns, StartDelay: 200 * time.Millisecond})
	d := checkoutDeployment(ns, "checkout", 1, map[string]string{"version": "v1"}, nil)
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
	createDeployment(t, d)
	waitForStatus(t, ns, "checkout", 10*time.Second, "rolled out", rolledOut(1))

	updateDeployment(t, ns, "checkout", func(d *appsv1.Deployment) {
		d.Spec.Template.Labels["version"] = "v2"
		d.Spec.Template.Annotations = map[string]string{AnnotationNeverReady: "true", AnnotationBehaviour: `{"errorRate":"often"}`}
	})
	st := waitForStatus(t, ns, "checkout", 10*time.Second, "past its progress deadline", func(s appsv1.DeploymentStatus) error {
		return conditionIs(s, appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded")
	})
	if st.Replicas != 2 || st.UpdatedReplicas != 1 || st.ReadyReplicas != 1 || st.AvailableReplicas != 1 {
		t.Errorf("status %+v: want the old pod still ready next to the new one", st)
	}
	if err := conditionIs(st, appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable"); err != nil {
		t.Error(err)
	}
	counts, err := s.Fire(t.Context(), 50)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if counts["v1"] != 50 || requestsTo(t, s, "checkout", "200") < 50 {
		t.Errorf("with a never-ready v2, checkout served %v, want all 50 by the old v1 pod, answered 200", counts)
	}
	// The bad behaviour annotation is reported as a Warning Event on the
	// Deployment, and ignored.
	eventually(t, 5*time.Second, "a Warning Event about the bad annotation", func() error {
		evs, err := kube(t).CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "checkout" && e.Reason == reasonBadAnnotation && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Message, AnnotationBehaviour) {
				return nil
			}
		}
		return errors.New("none")
	})
}

func TestStackSubsetsByTrackOverDeployments(t *testing.T) {
	const ns = "shop-track"
	s := startMeshWith(t, Options{Namespace: ns, StartDelay: 300 * time.Millisecond})
	if err := st.CreateWorkloads(t.Context(), ns, stack.Workloads{Services: []stack.Service{{Name: Checkout, App: Checkout}}}); err != nil {
		t.Fatalf("CreateWorkloads: %v", err)
	}
	createDeployment(t, checkoutDeployment(ns, "checkout-stable", 2, map[string]string{"serin.dev/track": "stable", "version": "v1"}, nil))
	createDeployment(t, checkoutDeployment(ns, "checkout-canary", 1, map[string]string{"serin.dev/track": "canary", "version": "v2"}, nil))
	cs := istio(t)
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: Checkout, Namespace: ns}}
	dr.Spec.Host = Checkout
	for _, track := range []string{"stable", "canary"} {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &apiv1alpha3.Subset{Name: track, Labels: map[string]string{"serin.dev/track": track}})
	}
	if _, err := cs.NetworkingV1().DestinationRules(ns).Create(t.Context(), dr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create DestinationRule: %v", err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: Checkout, Namespace: ns}}
	vs.Spec.Hosts = []string{Checkout}
	vs.Spec.Http = []*apiv1alpha3.HTTPRoute{route(nil, to(Checkout, "stable", 100), to(Checkout, "canary", 0))}
	if _, err := cs.NetworkingV1().VirtualServices(ns).Create(t.Context(), vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService: %v", err)
	}
	waitForStatus(t, ns, "checkout-stable", 10*time.Second, "rolled out", rolledOut(2))
	waitForStatus(t, ns, "checkout-canary", 10*time.Second, "rolled out", rolledOut(1))

	counts, err := s.FireWorkloads(t.Context(), 200)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if counts["checkout-stable"] != 200 {
		t.Errorf("at 100/0 checkout served %v, want all 200 by checkout-stable", counts)
	}
	if u := s.UnreadyRequests(); u.Total != 0 {
		t.Errorf("unready requests %+v, want none", u)
	}
	// The Service's EndpointSlice lists the three ready pods.
	eventually(t, 5*time.Second, "checkout's EndpointSlice lists the Deployments' pods", func() error {
		eps, err := kube(t).DiscoveryV1().EndpointSlices(ns).List(t.Context(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + Checkout})
		if err != nil || len(eps.Items) != 1 {
			return fmt.Errorf("%v slices (%v)", len(eps.Items), err)
		}
		ready := 0
		for _, e := range eps.Items[0].Endpoints {
			if ptr.Deref(e.Conditions.Ready, false) && e.TargetRef != nil && strings.HasPrefix(e.TargetRef.Name, "checkout-") {
				ready++
			}
		}
		if ready != 3 {
			return fmt.Errorf("%d ready endpoints of the Deployments' pods, want 3", ready)
		}
		return nil
	})

	// The canary scaled to 0 and the route sent to it: no healthy upstream.
	updateDeployment(t, ns, "checkout-canary", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](0) })
	waitForStatus(t, ns, "checkout-canary", 5*time.Second, "scaled to 0", rolledOut(0))
	updateWeights(t, ns, 0, 100)
	time.Sleep(300 * time.Millisecond) // the watch applies it within milliseconds
	counts, err = s.FireWorkloads(t.Context(), 20)
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	if counts[NoCheckout] != 20 {
		t.Errorf("to a canary of 0 pods checkout served %v, want none", counts)
	}
	uh, _ := series(t, s, "istio_requests_total", map[string]string{"reporter": reporterSource, "source_workload": "frontend-v1",
		"destination_service_name": Checkout, "response_code": "503", "response_flags": "UH"})
	if uh != 20 {
		t.Errorf("%v requests answered 503 UH, want 20", uh)
	}
	if u := s.UnreadyRequests(); u.Total != 20 || u.ByWorkload["checkout-canary"] != 20 {
		t.Errorf("unready requests %+v, want 20 to checkout-canary", u)
	}
	if n, _ := series(t, s, "meshsim_unready_requests_total", map[string]string{"namespace": ns, "workload": "checkout-canary"}); n != 20 {
		t.Errorf("meshsim_unready_requests_total = %v, want 20", n)
	}
	updateWeights(t, ns, 100, 0)
	s.SetRPS(50)
	var got float64
	eventually(t, 30*time.Second, "Prometheus sees destination_workload=checkout-stable",
		queryBetween(t.Context(), fmt.Sprintf(`sum(istio_requests_total{reporter="destination",destination_workload_namespace=%q,destination_workload="checkout-stable"})`, ns),
			1, math.Inf(1), &got))
}
