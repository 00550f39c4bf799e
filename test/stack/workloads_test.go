package stack_test

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/test/stack"
)

// TestWorkloadsMakeTheMeshValid starts the API server alone, applies the
// demo mesh (a VirtualService and a DestinationRule for checkout, no
// Service) and checks that Istio's analyzers, through Analyze, report what a
// real cluster would: IST0101 and IST0174 for the missing Service, IST0102
// for the uninjected namespace. Once CreateWorkloads has written checkout's
// Service, Pods and EndpointSlice, they report nothing about the namespace.
func TestWorkloadsMakeTheMeshValid(t *testing.T) {
	ctx := t.Context()
	st, err := stack.Start(ctx, stack.Options{Istio: true, Log: tWriter{t}})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() { _ = st.Stop() })
	if err := st.ApplyYAML(ctx, filepath.Join(stack.RepoRoot(), "deploy", "demo", "mesh.yaml")); err != nil {
		t.Fatal(err)
	}
	codes := func() map[string]string { // code -> level, for namespace shop
		msgs, err := st.Analyze(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, m := range msgs {
			if m.About("shop") {
				got[m.Code] = m.Level
				t.Logf("%s", m)
			}
		}
		return got
	}
	want := map[string]string{"IST0101": stack.LevelError, "IST0174": stack.LevelWarning, "IST0102": stack.LevelInfo}
	if got := codes(); !mapsEqual(got, want) {
		t.Errorf("before the workloads: %v, want %v", got, want)
	}
	if err := st.CreateWorkloads(ctx, "shop", stack.App("checkout", "v1", "v2")); err != nil {
		t.Fatal(err)
	}
	if got := codes(); len(got) != 0 {
		t.Errorf("with the workloads: %v, want nothing about shop", got)
	}
	checkWorkloads(t, st)
}

// checkWorkloads checks the objects CreateWorkloads wrote for checkout v1
// and v2: an injected namespace, Pending Pods with distinct stand-in IPs and
// the sidecar, and one EndpointSlice listing both on the target port.
func checkWorkloads(t *testing.T, st *stack.Stack) {
	kc := kubernetes.NewForConfigOrDie(st.RESTConfig())
	ctx := t.Context()
	ns, err := kc.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || ns.Labels[stack.InjectionLabel] != "enabled" {
		t.Errorf("namespace shop labels %v (%v), want %s=enabled", ns.Labels, err, stack.InjectionLabel)
	}
	pods, err := kc.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, p := range pods.Items {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !netip.MustParsePrefix("10.0.0.0/8").Contains(ip) || p.Status.Phase != corev1.PodPending {
			t.Errorf("Pod %s: IP %q phase %s, want a 10.x IP and Pending", p.Name, p.Status.PodIP, p.Status.Phase)
		}
		if !slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == "istio-proxy" }) {
			t.Errorf("Pod %s has no istio-proxy container", p.Name)
		}
		ips = append(ips, p.Status.PodIP)
	}
	slices.Sort(ips)
	if len(ips) != 2 || ips[0] == ips[1] {
		t.Errorf("Pod IPs %v, want two distinct", ips)
	}
	eps, err := kc.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=checkout"})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps.Items) != 1 || len(eps.Items[0].Endpoints) != 2 || *eps.Items[0].Ports[0].Port != stack.TargetPort {
		t.Errorf("EndpointSlices of checkout: %+v, want one with both Pods on port %d", eps.Items, stack.TargetPort)
	}
}

// TestAnalyzeWithoutIstioctl checks that a missing istioctl is an error
// that says so, never an empty (clean) answer.
func TestAnalyzeWithoutIstioctl(t *testing.T) {
	t.Setenv("SERIN_CACHE", t.TempDir())
	var st stack.Stack
	_, err := st.Analyze(t.Context())
	if !errors.Is(err, stack.ErrNoIstioctl) {
		t.Fatalf("Analyze without istioctl: %v, want ErrNoIstioctl", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
